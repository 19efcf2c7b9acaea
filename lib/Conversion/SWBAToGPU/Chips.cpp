//===- Chips.cpp - The GPU chips the swba kernels support -----------------===//

#include "swba/Conversion/SWBAToGPU/Chips.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::swba;

/// Every chip from sm_80 on has the mma.sync m16n8k16 (f16 and bf16) and
/// ldmatrix instructions that the kernels are made of; sm_90a adds the
/// warpgroup-MMA + TMA kernels. Each chip with the first PTX ISA version
/// that knows it (as LLVM's NVPTX backend requires).
static constexpr ChipInfo kChips[] = {
    {"sm_80", 70},   {"sm_86", 71},   {"sm_87", 74},   {"sm_89", 78},
    {"sm_90", 78},   {"sm_90a", 80},  {"sm_100", 86},  {"sm_100a", 86},
    {"sm_101", 86},  {"sm_101a", 86}, {"sm_103", 88},  {"sm_103a", 88},
    {"sm_110", 90},  {"sm_110a", 90}, {"sm_120", 87},  {"sm_120a", 87},
    {"sm_121", 88},  {"sm_121a", 88},
};

/// PTX ISA versions LLVM 22's NVPTX backend knows from sm_80 on.
static constexpr unsigned kPtxVersions[] = {70, 71, 72, 73, 74, 75, 76, 77,
                                            78, 80, 81, 82, 83, 84, 85, 86,
                                            87, 88, 90};

std::optional<ChipInfo> mlir::swba::lookupChip(StringRef name) {
  for (const ChipInfo &chip : kChips)
    if (chip.name == name)
      return chip;
  return std::nullopt;
}

std::string mlir::swba::supportedChips() {
  std::string list;
  llvm::raw_string_ostream os(list);
  llvm::interleave(
      kChips, os, [&](const ChipInfo &chip) { os << chip.name; }, ", ");
  return list;
}

std::optional<unsigned> mlir::swba::parsePtxVersion(StringRef ptx) {
  unsigned version;
  if (!ptx.consume_front("ptx") || ptx.getAsInteger(10, version) ||
      !llvm::is_contained(kPtxVersions, version))
    return std::nullopt;
  return version;
}
