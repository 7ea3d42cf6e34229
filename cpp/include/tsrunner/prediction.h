#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tsrunner/manifest_vocabulary.h"
#include "tsrunner/task.h"

namespace tsrunner {

// A span of the input text: character offsets (Unicode code points, as Python and Hugging
// Face count them) and the same span in bytes of the UTF-8 string (for std::string::substr).
struct TextSpan {
  size_t start = 0;
  size_t end = 0;
  size_t byte_start = 0;
  size_t byte_end = 0;
};

// text-classification: one label with its probability.
struct LabelScore {
  std::string label;
  float score = 0.0f;
};

// fill-mask: one candidate token for a mask position.
struct TokenScore {
  int64_t id = 0;
  std::string token;  // Tokenizer::id_to_token(id), e.g. "paris" or "##ing"
  float score = 0.0f;
};

// fill-mask: the candidates for one mask token, best first.
struct MaskFill {
  size_t position = 0;  // index of the mask token in the encoding
  std::vector<TokenScore> candidates;
};

// token-classification: adjacent tokens of one entity type merged (Hugging Face's
// aggregation_strategy="simple"), "O" left out.
struct Entity {
  std::string entity_group;  // the label without its B-/I- prefix
  float score = 0.0f;        // mean of the tokens' probabilities
  std::string word;          // the tokens decoded ("new york", subwords joined)
  TextSpan span;             // in the text
};

// question-answering: the best span of the context (the text pair).
struct Answer {
  std::string text;    // the context's characters [span.start, span.end)
  float score = 0.0f;  // P(start) * P(end)
  TextSpan span;       // in the context
};

// multiple-choice: one choice with its probability (the softmax over the question's choices).
struct ChoiceScore {
  std::string choice;  // the choice's text, where the caller gave text
  float score = 0.0f;
};

// The task-aware answer for one input. `task` says which field is filled; the others stay
// empty. New tasks add a field here (plain structs, no JSON dependency in the API; the JSON
// form is prediction_json.h's).
struct Prediction {
  Task task = Task::kOther;
  std::vector<float> embedding;      // feature-extraction: the pooled sentence vector
  std::vector<LabelScore> labels;    // text-classification: best first
  std::vector<MaskFill> masks;       // fill-mask: one per mask token, in order
  std::vector<Entity> entities;      // token-classification: in text order
  std::optional<Answer> answer;      // question-answering: nullopt when no span qualifies
  std::vector<ChoiceScore> choices;  // multiple-choice: in the order given
  size_t best_choice = 0;            // multiple-choice: the index of the likeliest choice
};

// How predictions are cut down; the defaults follow Hugging Face's pipelines.
struct TaskOptions {
  // text-classification: labels kept (nullopt: all); fill-mask: candidates per mask
  // (nullopt: 5).
  std::optional<size_t> top_k;
  // question-answering: the longest answer, in tokens.
  size_t max_answer_length = 15;
  // question-answering: a context too long for the export is cut into windows of
  // min(max_length, 384) tokens sharing this many; the best answer of all windows wins
  // (nullopt: Hugging Face's default, min(window / 2, 128)).
  std::optional<size_t> doc_stride;
  // feature-extraction of a sentence-transformers export: the prompt put before every text,
  // by name (Manifest::sentence_embedding->prompts); nullopt: the model's default prompt, if
  // any, as SentenceTransformer.encode does.
  std::optional<std::string> prompt_name;
  // text-classification: how logits become scores (kNone: the logits themselves, TEI's
  // raw_scores); nullopt: the manifest's score_function (sigmoid for one label, softmax for
  // several when the manifest names none). parse_score_function reads the names.
  std::optional<ScoreFunction> score_function;
  // feature-extraction: whether the embedding is L2-normalised (nullopt: as the export does it,
  // by its sentence-transformers Normalize module or its manifest's pooling). true normalises an
  // export's embedding that is not; false on an export whose graph normalises (a Normalize
  // module) is refused with InvalidInput, since the vector before it is not an output.
  std::optional<bool> normalize;
  // A text (or pair) longer than the export's max_length: cut as the export's tokenizer cuts it
  // (nullopt or true, as Transformers' pipelines) or refused with InvalidInput naming the length
  // (false, as text-embeddings-inference's truncate=false). Question-answering contexts are cut
  // into windows either way.
  std::optional<bool> truncate;
};

inline bool operator==(const TaskOptions& a, const TaskOptions& b) {
  return a.top_k == b.top_k && a.max_answer_length == b.max_answer_length &&
         a.doc_stride == b.doc_stride && a.prompt_name == b.prompt_name &&
         a.score_function == b.score_function && a.normalize == b.normalize &&
         a.truncate == b.truncate;
}
inline bool operator!=(const TaskOptions& a, const TaskOptions& b) { return !(a == b); }

}  // namespace tsrunner
