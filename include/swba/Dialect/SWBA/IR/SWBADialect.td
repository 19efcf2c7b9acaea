//===- SWBADialect.td - Sliding window block attention dialect -*- tablegen -*-===//

#ifndef SWBA_DIALECT_SWBA_IR_SWBADIALECT_TD
#define SWBA_DIALECT_SWBA_IR_SWBADIALECT_TD

include "mlir/IR/OpBase.td"

def SWBA_Dialect : Dialect {
  let name = "swba";
  let summary = "Sliding window block attention (SWBA) for frame-structured sequences.";
  let description = [{
    The `swba` dialect carries attention whose mask is a *sliding window of
    whole frames*: a sequence is a run of frames ("blocks") of `block_size`
    tokens, and a query in frame `f` sees every key in frames
    `f - window + 1 .. f`, nothing else. Autoregressive video transformers use
    this pattern; keeping it as one op lets the compiler visit only the key
    tiles that intersect each query tile's window.

    Positions are bottom-right aligned: with `Nq` queries and `Nk` keys, query
    row `i` sits at position `i + (Nk - Nq)` and key row `j` at position `j`.
    `frame(p) = p floordiv block_size`, and key `j` is visible to query `i` iff
    `frame(kpos) <= frame(qpos)` and `frame(qpos) - frame(kpos) < window`.

    Ops are in destination-passing style and accept either tensors or memrefs
    (like `linalg` ops); the tensor form bufferizes with one-shot-bufferize.
  }];
  let cppNamespace = "::mlir::swba";
}

class SWBA_Op<string mnemonic, list<Trait> traits = []>
    : Op<SWBA_Dialect, mnemonic, traits>;

#endif // SWBA_DIALECT_SWBA_IR_SWBADIALECT_TD
