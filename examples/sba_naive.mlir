// DEMO: --raise-swba --remarks-filter-missed=raise-swba --canonicalize --one-shot-bufferize=bufferize-function-boundaries --lower-swba=target=cpu --canonicalize --cse
//
// The seed's naive `SBA` (B=1, H=2, N=64, D=16, bs=16, ws=2, scale 1/4) as
// an importer such as torch-mlir emits it:
//
//   mask = triu(ones(NB, NB), 1) + tril(ones(NB, NB), -ws) -> -inf where 1,
//          repeat_interleave(bs) on both axes
//   attn = (q @ k.transpose(-2, -1)) * sm_scale + mask
//   out  = attn.softmax(dim=-1) @ v
//
// --raise-swba proves the mask is SWBA(16, 2) on all 64x64 pairs and replaces
// the chain with one swba.attention on q, k, v, which the demo then lowers to
// block-window CPU loops.
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map2d = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#row = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
#mask2 = affine_map<(d0, d1) -> (d0, d1)>
#red_in = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#red_out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
func.func @SBA(%q: tensor<1x2x64x16xf32>, %k: tensor<1x2x64x16xf32>, %v: tensor<1x2x64x16xf32>) -> tensor<1x2x64x16xf32> {
  %cst0 = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.25 : f32
  // mask = triu(1) + tril(-ws) over frames, -inf where 1, repeat_interleave(bs)
  %e2 = tensor.empty() : tensor<64x64xf32>
  %mask = linalg.generic {indexing_maps = [#mask2], iterator_types = ["parallel", "parallel"]} outs(%e2 : tensor<64x64xf32>) {
  ^bb0(%out: f32):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c16 = arith.constant 16 : index
    %c2 = arith.constant 2 : index
    %fi = arith.divsi %i, %c16 : index
    %fj = arith.divsi %j, %c16 : index
    %future = arith.cmpi sgt, %fj, %fi : index
    %d = arith.subi %fi, %fj : index
    %old = arith.cmpi sge, %d, %c2 : index
    %hide = arith.ori %future, %old : i1
    %val = arith.select %hide, %ninf, %cst0 : f32
    linalg.yield %val : f32
  } -> tensor<64x64xf32>
  %kte = tensor.empty() : tensor<1x2x16x64xf32>
  %kt = linalg.transpose ins(%k : tensor<1x2x64x16xf32>) outs(%kte : tensor<1x2x16x64xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x64x16xf32> into tensor<2x64x16xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x16x64xf32> into tensor<2x16x64xf32>
  %se = tensor.empty() : tensor<2x64x64xf32>
  %sz = linalg.fill ins(%cst0 : f32) outs(%se : tensor<2x64x64xf32>) -> tensor<2x64x64xf32>
  %s3 = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x64x16xf32>, tensor<2x16x64xf32>) outs(%sz : tensor<2x64x64xf32>) -> tensor<2x64x64xf32>
  %s = tensor.expand_shape %s3 [[0, 1], [2], [3]] output_shape [1, 2, 64, 64] : tensor<2x64x64xf32> into tensor<1x2x64x64xf32>
  %e4 = tensor.empty() : tensor<1x2x64x64xf32>
  %scaled = linalg.generic {indexing_maps = [#map4, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x64x64xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.mulf %in, %scale : f32
    linalg.yield %m : f32
  } -> tensor<1x2x64x64xf32>
  %masked = linalg.generic {indexing_maps = [#map4, #map2d, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%scaled, %mask : tensor<1x2x64x64xf32>, tensor<64x64xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %mk: f32, %out: f32):
    %a = arith.addf %in, %mk : f32
    linalg.yield %a : f32
  } -> tensor<1x2x64x64xf32>
  // softmax, decomposed: max, sub, exp, sum, div
  %re = tensor.empty() : tensor<1x2x64x1xf32>
  %mi = linalg.fill ins(%ninf : f32) outs(%re : tensor<1x2x64x1xf32>) -> tensor<1x2x64x1xf32>
  %max = linalg.generic {indexing_maps = [#red_in, #red_out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%masked : tensor<1x2x64x64xf32>) outs(%mi : tensor<1x2x64x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %mx = arith.maximumf %in, %acc : f32
    linalg.yield %mx : f32
  } -> tensor<1x2x64x1xf32>
  %ex = linalg.generic {indexing_maps = [#map4, #row, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%masked, %max : tensor<1x2x64x64xf32>, tensor<1x2x64x1xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %mx: f32, %out: f32):
    %d = arith.subf %in, %mx : f32
    %x = math.exp %d : f32
    linalg.yield %x : f32
  } -> tensor<1x2x64x64xf32>
  %si = linalg.fill ins(%cst0 : f32) outs(%re : tensor<1x2x64x1xf32>) -> tensor<1x2x64x1xf32>
  %sum = linalg.generic {indexing_maps = [#red_in, #red_out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x64x64xf32>) outs(%si : tensor<1x2x64x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<1x2x64x1xf32>
  %p = linalg.generic {indexing_maps = [#map4, #row, #map4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x64x64xf32>, tensor<1x2x64x1xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %sm: f32, %out: f32):
    %d = arith.divf %in, %sm : f32
    linalg.yield %d : f32
  } -> tensor<1x2x64x64xf32>
  %p3 = tensor.collapse_shape %p [[0, 1], [2], [3]] : tensor<1x2x64x64xf32> into tensor<2x64x64xf32>
  %v3 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x2x64x16xf32> into tensor<2x64x16xf32>
  %oe = tensor.empty() : tensor<2x64x16xf32>
  %oz = linalg.fill ins(%cst0 : f32) outs(%oe : tensor<2x64x16xf32>) -> tensor<2x64x16xf32>
  %o3 = linalg.batch_matmul ins(%p3, %v3 : tensor<2x64x64xf32>, tensor<2x64x16xf32>) outs(%oz : tensor<2x64x16xf32>) -> tensor<2x64x16xf32>
  %o = tensor.expand_shape %o3 [[0, 1], [2], [3]] output_shape [1, 2, 64, 16] : tensor<2x64x16xf32> into tensor<1x2x64x16xf32>
  return %o : tensor<1x2x64x16xf32>
}
