#include "tsrunner/manifest.h"

#include <c10/core/ScalarType.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <string>

#include "test_paths.h"
#include "tsrunner/errors.h"

namespace {

using tsrunner::LoadError;
using tsrunner::Manifest;
using tsrunner::testing::read_data_file;

std::string edited(const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json manifest = nlohmann::json::parse(read_data_file("manifests/valid.json"));
  edit(manifest);
  return manifest.dump();
}

void expect_load_error(const std::string& text, const std::string& fragment) {
  try {
    Manifest::parse(text);
    FAIL() << "expected LoadError containing: " << fragment;
  } catch (const LoadError& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(Manifest, ParsesEveryField) {
  const Manifest manifest = Manifest::parse(read_data_file("manifests/valid.json"));
  EXPECT_EQ(manifest.schema_version, 1);
  EXPECT_EQ(manifest.task, "feature-extraction");
  EXPECT_EQ(manifest.model_type, "bert");
  EXPECT_EQ(manifest.model_class, "BertModel");
  ASSERT_EQ(manifest.inputs.size(), 3u);
  EXPECT_EQ(manifest.inputs[0].name, "input_ids");
  EXPECT_EQ(manifest.inputs[0].dims[0].symbol, "batch");
  EXPECT_EQ(manifest.inputs[0].dtype, tsrunner::DType::kInt64);
  EXPECT_EQ(manifest.inputs[0].default_fill, tsrunner::Fill::kRequired);
  EXPECT_EQ(manifest.inputs[1].default_fill, tsrunner::Fill::kOnes);
  EXPECT_EQ(manifest.inputs[2].default_fill, tsrunner::Fill::kZeros);
  ASSERT_TRUE(manifest.inputs[0].value_range.has_value());
  EXPECT_EQ(manifest.inputs[0].value_range->second, 30522);
  ASSERT_EQ(manifest.outputs.size(), 2u);
  EXPECT_EQ(manifest.outputs[0].dims[2].size, 32);
  EXPECT_FALSE(manifest.outputs[0].dims[2].is_symbolic());
  EXPECT_EQ(manifest.shape_contract.kind, tsrunner::ShapeKind::kDynamic);
  EXPECT_EQ(manifest.backend, tsrunner::Backend::kJit);
  EXPECT_EQ(manifest.shape_contract.max_sequence, 64);
  EXPECT_EQ(manifest.max_length, 64);
  EXPECT_TRUE(manifest.has_tokenizer);
  ASSERT_NE(manifest.find_input("token_type_ids"), nullptr);
  EXPECT_EQ(manifest.find_input("pixel_values"), nullptr);
}

TEST(Manifest, DescribeIsReadable) {
  const std::string text = Manifest::parse(read_data_file("manifests/valid.json")).describe();
  EXPECT_NE(text.find("task        feature-extraction"), std::string::npos) << text;
  EXPECT_NE(text.find("attention_mask int64 [batch, sequence]  (default: ones)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("last_hidden_state float32 [batch, sequence, 32]"), std::string::npos);
  EXPECT_NE(text.find("shapes      dynamic: sequence 1..64"), std::string::npos) << text;
  EXPECT_NE(text.find("pooling     mean, normalized"), std::string::npos) << text;
  EXPECT_NE(text.find("validation  passed at 1 shapes, atol 0.0001, worst max|diff| 2.5e-07"),
            std::string::npos)
      << text;
}

TEST(Manifest, RefusesANewerSchema) {
  expect_load_error(edited([](auto& m) { m["schema_version"] = 3; }),
                    "uses manifest schema 3 but this tsrunner reads up to 2: upgrade tsrunner");
}

// Schema 2: a sentence-transformers pipeline traced into the graph, with prompts.
std::string with_sentence_embedding(const std::function<void(nlohmann::json&)>& edit = {}) {
  return edited([&edit](auto& m) {
    m["schema_version"] = 2;
    m["max_length"] = 64;
    m["outputs"].push_back(
        {{"name", "sentence_embedding"}, {"dtype", "float32"}, {"shape", {"batch", 16}}});
    m["sentence_embedding"] = {
        {"output", "sentence_embedding"},
        {"dimension", 16},
        {"modules",
         {{{"type", "Transformer"}, {"path", ""}, {"max_seq_length", 128}},
          {{"type", "Pooling"}, {"path", "1_Pooling"}, {"modes", {"cls", "mean"}}},
          {{"type", "Dense"},
           {"path", "2_Dense"},
           {"in_features", 64},
           {"out_features", 16},
           {"activation", "Tanh"}},
          {{"type", "Normalize"}, {"path", "3_Normalize"}}}},
        {"max_seq_length", 128},
        {"prompts", {{"query", "query: "}, {"passage", "passage: "}}},
        {"default_prompt_name", "query"},
        {"reference",
         {{"library", "sentence-transformers 6.2.0"},
          {"texts", 6},
          {"min_cosine", 0.9999999},
          {"max_abs_diff", 1e-7},
          {"passed", true}}}};
    if (edit) edit(m);
  });
}

TEST(Manifest, ParsesTheSentenceEmbeddingPipeline) {
  const Manifest manifest = Manifest::parse(with_sentence_embedding());
  EXPECT_EQ(manifest.schema_version, 2);
  ASSERT_TRUE(manifest.sentence_embedding.has_value());
  const tsrunner::SentenceEmbedding& embedding = *manifest.sentence_embedding;
  EXPECT_EQ(embedding.output, "sentence_embedding");
  EXPECT_EQ(embedding.dimension, 16);
  EXPECT_EQ(embedding.max_seq_length, 128);
  EXPECT_EQ(embedding.modules, (std::vector<std::string>{"Transformer", "Pooling(cls+mean)",
                                                         "Dense(64->16, Tanh)", "Normalize"}));
  EXPECT_EQ(embedding.prompt(""), "query: ");  // the default prompt
  EXPECT_EQ(embedding.prompt("passage"), "passage: ");
  try {
    embedding.prompt("document");
    FAIL() << "expected InvalidInput";
  } catch (const tsrunner::InvalidInput& error) {
    EXPECT_STREQ(error.what(),
                 "unknown prompt name \"document\"; this model has the prompts passage, query");
  }
  const std::string text = manifest.describe();
  EXPECT_NE(text.find("max length  64 (sentence-transformers truncates at 128)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("embedding   sentence_embedding [16]: Transformer -> Pooling(cls+mean) -> "
                      "Dense(64->16, Tanh) -> Normalize"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("prompts     passage: \"passage: \"\n              query: \"query: \" "
                      "(default)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("checked     against SentenceTransformer.encode (sentence-transformers "
                      "6.2.0): min cosine 1 on 6 texts"),
            std::string::npos)
      << text;
}

TEST(Manifest, RefusesABrokenSentenceEmbedding) {
  expect_load_error(
      with_sentence_embedding([](auto& m) { m["sentence_embedding"]["output"] = "pooled"; }),
      "sentence_embedding.output \"pooled\" is not one of the outputs");
  expect_load_error(with_sentence_embedding(
                        [](auto& m) { m["sentence_embedding"]["default_prompt_name"] = "x"; }),
                    "sentence_embedding.default_prompt_name must name one of the prompts");
  expect_load_error(
      with_sentence_embedding([](auto& m) { m["sentence_embedding"]["prompts"]["q"] = 1; }),
      "sentence_embedding.prompts must map names to strings");
  expect_load_error(edited([](auto& m) { m["score_function"] = "tanh"; }),
                    "manifest.score_function \"tanh\" is not one this tsrunner knows");
}

TEST(Manifest, NamesTheBrokenField) {
  expect_load_error("{not json", "invalid tsrunner manifest: not valid JSON");
  expect_load_error("[1, 2]", "the top level must be an object");
  expect_load_error(edited([](auto& m) { m.erase("task"); }), "manifest has no \"task\"");
  expect_load_error(edited([](auto& m) { m["inputs"] = nlohmann::json::array(); }),
                    "inputs must be a non-empty array");
  expect_load_error(edited([](auto& m) { m["inputs"][1].erase("dtype"); }),
                    "inputs[1] has no \"dtype\"");
  expect_load_error(edited([](auto& m) { m["inputs"][1]["default"] = "twos"; }),
                    "inputs[1].default \"twos\" is not one this tsrunner knows");
  expect_load_error(edited([](auto& m) { m["inputs"][1]["dtype"] = "int4"; }),
                    "inputs[1].dtype \"int4\" is not one this tsrunner knows");
  expect_load_error(edited([](auto& m) { m["inputs"][1]["role"] = "audio"; }),
                    "inputs[1].role \"audio\" is not one this tsrunner knows");
  expect_load_error(edited([](auto& m) { m["backend"] = "tensorrt"; }),
                    "manifest.backend \"tensorrt\" is not one this tsrunner knows");
  expect_load_error(edited([](auto& m) { m["inputs"][0]["range"] = {5, 5}; }),
                    "inputs[0].range must be [low, high)");
  expect_load_error(edited([](auto& m) { m["outputs"][0]["shape"] = {"batch", -3}; }),
                    "dimensions must be names or non-negative integers");
  expect_load_error(edited([](auto& m) { m["inputs"][1]["name"] = "input_ids"; }),
                    "repeats the name \"input_ids\"");
  expect_load_error(edited([](auto& m) { m["shape_contract"]["kind"] = "elastic"; }),
                    "shape_contract.kind must be \"dynamic\" or \"fixed\"");
  expect_load_error(edited([](auto& m) { m["max_length"] = "long"; }),
                    "manifest.max_length must be an integer");
}

TEST(Manifest, ParsesEveryTaskNameOnceIntoItsEnum) {
  const std::pair<const char*, tsrunner::Task> names[] = {
      {"feature-extraction", tsrunner::Task::kFeatureExtraction},
      {"fill-mask", tsrunner::Task::kFillMask},
      {"text-classification", tsrunner::Task::kTextClassification},
      {"token-classification", tsrunner::Task::kTokenClassification},
      {"question-answering", tsrunner::Task::kQuestionAnswering},
      {"multiple-choice", tsrunner::Task::kMultipleChoice},
      {"causal-lm", tsrunner::Task::kCausalLm},
      {"text2text", tsrunner::Task::kText2Text},
      {"image-classification", tsrunner::Task::kImageClassification},
  };
  std::set<std::string> seen;
  for (const auto& [name, task] : names) {
    const Manifest manifest = Manifest::parse(edited([&](auto& m) { m["task"] = name; }));
    EXPECT_EQ(manifest.task, name);
    EXPECT_EQ(manifest.task_kind, task) << name;
    EXPECT_EQ(tsrunner::task_name(task), name);
    seen.insert(name);
  }
  for (tsrunner::Task task : tsrunner::kKnownTasks) {
    EXPECT_EQ(seen.count(std::string(tsrunner::task_name(task))), 1u);
  }
  EXPECT_EQ(std::size(tsrunner::kKnownTasks), std::size(names));
}

TEST(Manifest, AnUnknownTaskLoadsAsOtherKeepingItsName) {
  // A newer exporter's task: the archive still runs raw; only task-aware output refuses it.
  const Manifest manifest = Manifest::parse(edited([](auto& m) { m["task"] = "speech-to-sign"; }));
  EXPECT_EQ(manifest.task_kind, tsrunner::Task::kOther);
  EXPECT_EQ(manifest.task, "speech-to-sign");
  EXPECT_EQ(tsrunner::parse_task("Fill-Mask"), tsrunner::Task::kOther);  // names are exact
  EXPECT_EQ(tsrunner::task_name(tsrunner::Task::kOther), "other");
  EXPECT_NE(manifest.describe().find("speech-to-sign"), std::string::npos);
}

TEST(Manifest, FindsInputsByRoleAndByHuggingFaceNameInArchivesWithoutRoles) {
  const Manifest renamed = Manifest::parse(edited([](auto& m) {
    const char* names[] = {"ids", "mask", "segments"};
    const char* roles[] = {"token_ids", "attention_mask", "token_type_ids"};
    for (int i = 0; i < 3; ++i) {
      m["inputs"][i]["name"] = names[i];
      m["inputs"][i]["role"] = roles[i];
    }
  }));
  EXPECT_EQ(renamed.find_input_by_role(tsrunner::Role::kTokenIds)->name, "ids");
  EXPECT_EQ(renamed.find_input_by_role(tsrunner::Role::kAttentionMask)->name, "mask");
  EXPECT_EQ(renamed.find_input_by_role(tsrunner::Role::kTokenTypeIds)->name, "segments");
  EXPECT_EQ(renamed.find_input_by_role(tsrunner::Role::kPixelValues), nullptr);
  // A role wins over a Hugging Face name that means something else.
  const Manifest swapped = Manifest::parse(edited([](auto& m) {
    m["inputs"][0]["role"] = "token_ids";
    m["inputs"][1]["name"] = "token_type_ids_";
    m["inputs"][2]["name"] = "attention_mask";
    m["inputs"][2]["role"] = "token_type_ids";
  }));
  EXPECT_EQ(swapped.find_input_by_role(tsrunner::Role::kTokenTypeIds)->name, "attention_mask");
  EXPECT_EQ(swapped.find_input_by_role(tsrunner::Role::kAttentionMask), nullptr);
  // No roles at all (archives before roles): Hugging Face's names.
  const Manifest old = Manifest::parse(read_data_file("manifests/valid.json"));
  EXPECT_EQ(old.find_input_by_role(tsrunner::Role::kTokenIds)->name, "input_ids");
  EXPECT_EQ(old.find_input_by_role(tsrunner::Role::kTokenTypeIds)->name, "token_type_ids");
  EXPECT_EQ(old.find_input_by_role(tsrunner::Role::kNone), nullptr);
  EXPECT_EQ(old.find_output("pooler_output")->name, "pooler_output");
  EXPECT_EQ(old.find_output("logits"), nullptr);
}

TEST(Manifest, ParsesRolesTracedLengthsAndBuckets) {
  const Manifest manifest = Manifest::parse(edited([](auto& m) {
    m["inputs"][0]["role"] = "token_ids";
    m["shape_contract"]["kind"] = "fixed";
    m["shape_contract"]["min_sequence"] = 64;
    m["shape_contract"]["traced"]["decoder_sequence"] = 32;
    m["shape_contract"]["buckets"] = {16, 32, 64};
  }));
  EXPECT_EQ(manifest.inputs[0].role, tsrunner::Role::kTokenIds);
  // No recorded role: Hugging Face's name for the input says it.
  EXPECT_EQ(manifest.inputs[1].role, tsrunner::Role::kAttentionMask);
  EXPECT_EQ(manifest.shape_contract.kind, tsrunner::ShapeKind::kFixed);
  EXPECT_EQ(manifest.pad_token_id, 0);
  EXPECT_EQ(manifest.shape_contract.traced.at("sequence"), 64);
  EXPECT_EQ(manifest.shape_contract.traced.at("decoder_sequence"), 32);
  EXPECT_EQ(manifest.shape_contract.buckets, (std::vector<int64_t>{16, 32, 64}));
  EXPECT_NE(manifest.describe().find("shapes      fixed: sequence 64..64, buckets 16, 32, 64"),
            std::string::npos)
      << manifest.describe();
}

TEST(Manifest, RefusesBadBuckets) {
  auto fixed_with = [](nlohmann::json buckets) {
    return edited([buckets](auto& m) {
      m["shape_contract"]["kind"] = "fixed";
      m["shape_contract"]["min_sequence"] = 64;
      m["shape_contract"]["buckets"] = buckets;
    });
  };
  expect_load_error(fixed_with({32, 16, 64}), "buckets must be ascending positive lengths");
  expect_load_error(fixed_with({16, 32}), "need kind \"fixed\" and end at max_sequence");
  expect_load_error(edited([](auto& m) { m["shape_contract"]["buckets"] = {16, 64}; }),
                    "need kind \"fixed\"");
  expect_load_error(edited([](auto& m) { m["shape_contract"]["traced"]["sequence"] = 0; }),
                    "shape_contract.traced.sequence must be a positive integer");
}

}  // namespace

// Optional display fields of an unexpected type made describe() throw
// nlohmann::json::type_error (the manifest fuzz target aborts on it; `tsrun info` printed a raw
// library error). The same inputs are seeds in tests/data/fuzz/manifest/regression-*.json.
TEST(Manifest, DescribeToleratesOddOptionalFields) {
  const std::string text = Manifest::parse(edited([](auto& m) {
                             m["validation"] = {{"atol", "x"}, {"passed", 1}};
                           })).describe();
  EXPECT_NE(text.find("validation  FAILED at 0 shapes, atol 0"), std::string::npos) << text;
}

TEST(ManifestFuzzRegressions, PoolingIsCheckedBecausePredictUsesIt) {
  expect_load_error(edited([](auto& m) { m["pooling"] = {{"mode", 3}, {"normalize", "yes"}}; }),
                    "pooling.mode must be a string");
  expect_load_error(
      edited([](auto& m) { m["pooling"] = {{"mode", "median"}, {"normalize", true}}; }),
      "pooling.mode \"median\" is not one this tsrunner knows");
}

// Every word of each vocabulary parses back to itself; the dtype table agrees with LibTorch's
// element sizes and spells the Open Inference Protocol's names.
TEST(Manifest, VocabulariesRoundTrip) {
  using namespace tsrunner;
  for (Role role : {Role::kTokenIds, Role::kAttentionMask, Role::kTokenTypeIds,
                    Role::kDecoderTokenIds, Role::kPixelValues}) {
    EXPECT_EQ(parse_role(role_name(role)), role);
  }
  EXPECT_EQ(parse_role(""), std::nullopt);
  for (Fill fill : {Fill::kOnes, Fill::kZeros}) EXPECT_EQ(parse_fill(fill_name(fill)), fill);
  for (ShapeKind kind : {ShapeKind::kDynamic, ShapeKind::kFixed, ShapeKind::kUnknown}) {
    EXPECT_EQ(parse_shape_kind(shape_kind_name(kind)), kind);
  }
  for (PoolingMode mode :
       {PoolingMode::kMean, PoolingMode::kCls, PoolingMode::kMax, PoolingMode::kMeanSqrtLenTokens,
        PoolingMode::kWeightedMean, PoolingMode::kLastToken}) {
    EXPECT_EQ(parse_pooling_mode(pooling_mode_name(mode)), mode);
  }
  for (Backend backend : {Backend::kJit, Backend::kNeuron, Backend::kAoti}) {
    EXPECT_EQ(parse_backend(backend_name(backend)), backend);
  }
  for (DType dtype :
       {DType::kInt64, DType::kInt32, DType::kInt16, DType::kInt8, DType::kUInt8, DType::kBool,
        DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16}) {
    EXPECT_EQ(parse_dtype(dtype_name(dtype)), dtype);
    EXPECT_EQ(parse_protocol_datatype(protocol_datatype(dtype)), dtype);
    ASSERT_TRUE(scalar_type(dtype).has_value());
    EXPECT_EQ(dtype_of(*scalar_type(dtype)), dtype);
    EXPECT_EQ(dtype_size(dtype), c10::elementSize(*scalar_type(dtype))) << dtype_name(dtype);
  }
  EXPECT_EQ(protocol_datatype(DType::kFloat32), "FP32");
  EXPECT_EQ(protocol_datatype(DType::kBFloat16), "BF16");
  EXPECT_EQ(dtype_of(c10::ScalarType::ComplexFloat), DType::kUnknown);
  EXPECT_EQ(scalar_type(DType::kUnknown), std::nullopt);
  EXPECT_EQ(parse_protocol_datatype("BYTES"), std::nullopt);
}

TEST(Manifest, ParsesLabelsAndMaskTokenId) {
  const Manifest manifest = Manifest::parse(edited([](auto& m) {
    m["labels"] = {"O", "B-PER", "I-PER"};
    m["mask_token_id"] = 103;
  }));
  EXPECT_EQ(manifest.labels, (std::vector<std::string>{"O", "B-PER", "I-PER"}));
  EXPECT_EQ(manifest.mask_token_id, 103);
  const Manifest plain = Manifest::parse(edited([](auto& m) { m["mask_token_id"] = nullptr; }));
  EXPECT_TRUE(plain.labels.empty());
  EXPECT_FALSE(plain.mask_token_id.has_value());
  expect_load_error(edited([](auto& m) { m["labels"] = {"O", 1}; }),
                    "labels must be an array of strings");
}
