/* What libtsrunner exports. The library is compiled with hidden visibility, so only the
 * declarations marked TSR_API (the C++ API in this directory and the C API of c_api.h) are in
 * its dynamic symbol table; kernels, graph rewrites and tsrunner::detail stay inside it. Marking
 * a class exports its members, vtable and typeinfo, so `catch (const tsrunner::LoadError&)`
 * works across the library boundary. Plain C, so c_api.h can include it. */
#pragma once

#if defined(__GNUC__)
#define TSR_API __attribute__((visibility("default")))
#else
#define TSR_API
#endif
