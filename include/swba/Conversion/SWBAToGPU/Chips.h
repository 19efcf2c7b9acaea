//===- Chips.h - The GPU chips the swba kernels support ---------*- C++ -*-===//

#ifndef SWBA_CONVERSION_SWBATOGPU_CHIPS_H
#define SWBA_CONVERSION_SWBATOGPU_CHIPS_H

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>

namespace mlir::swba {

/// The chip of the GPU lowering and pipeline when none is named: sm_80, the
/// oldest chip the kernels run on, so that its PTX runs on every supported
/// GPU. Chips other than sm_90a only differ in the PTX/cubin target.
inline constexpr char kDefaultChip[] = "sm_80";

/// A chip the GPU kernels support, with the first PTX ISA version that
/// knows it (80 for PTX ISA 8.0).
struct ChipInfo {
  StringRef name;
  unsigned minPtxVersion;
};

/// The supported chip called `name` (e.g. "sm_90a"), or nothing.
std::optional<ChipInfo> lookupChip(StringRef name);

/// The supported chips' names, comma-separated, for diagnostics.
std::string supportedChips();

/// The version of a PTX ISA name such as "ptx80" that LLVM's NVPTX backend
/// knows (7.0 and later), or nothing.
std::optional<unsigned> parsePtxVersion(StringRef ptx);

} // namespace mlir::swba

#endif // SWBA_CONVERSION_SWBATOGPU_CHIPS_H
