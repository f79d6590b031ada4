# Runs a small `graft bench step` or `graft bench memory` and checks what it reports.
if(KIND STREQUAL "step")
  # 2 layers, d 64, 4 heads, ffn 128, vocab 500, batch 2 x (8 prefix + 16 text).
  execute_process(COMMAND ${GRAFT} bench step --threads 2 --layers 2 --hidden 64 --heads 4 --ffn 128
    --vocab 500 --batch 2 --prefix 8 --seq 16 --steps 2 --warmup 1 --min-time 0
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "graft bench step failed (${rc})")
  endif()
  # Analytic matmul FLOPs (2mnk): rows = 2 * 24 = 48; linear layers and LM head
  # 2*48*(2*(4*64*64 + 2*64*128) + 500*64) = 9363456; attention (q.k and p.v) 2 layers * 2 rows
  # * 4 heads * 2 * (2*24*24*16) = 589824. Forward: 9953280; backward to activations: one
  # product per linear (dx only: the weights are frozen), two per attention product: 10543104.
  if(NOT out MATCHES "matmul FLOPs per step: 9953280 forward \\+ 10543104 backward = 20496384")
    message(FATAL_ERROR "the counted FLOPs differ from the analytic count")
  endif()
  if(NOT out MATCHES "no parameter gradient is formed \\(0 of [0-9]+ matmul launches\\)")
    message(FATAL_ERROR "a parameter gradient was formed in a frozen-LM step")
  endif()
  if(NOT out MATCHES "loss [0-9]+\\.[0-9]+, soft-prompt gradient norm [0-9]")
    message(FATAL_ERROR "no loss / gradient line")
  endif()
  string(STRIP "${out}" stripped)
  if(NOT stripped MATCHES "\nbench step: [0-9]+\\.[0-9] GFLOP/s, [0-9]+\\.[0-9]% of sgemm ceiling$")
    message(FATAL_ERROR "last line is not 'bench step: G GFLOP/s, P% of sgemm ceiling'")
  endif()
else()
  # 8 layers, d 1024, ffn 2816, vocab 1000, BF16: 206 MB, mostly layer weights (the fixed
  # overheads -- OpenBLAS buffers, one cached F32 conversion per weight shape -- stay small).
  execute_process(COMMAND ${GRAFT} bench memory --threads 2 --layers 8 --hidden 1024 --heads 8 --ffn 2816
    --vocab 1000 --tokens 8 --limit 100
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "graft bench memory failed (${rc})")
  endif()
  if(NOT out MATCHES "growth over the RSS before opening: ([0-9.]+) x file size")
    message(FATAL_ERROR "no growth line")
  endif()
  if(CMAKE_MATCH_1 GREATER_EQUAL 1.2)
    message(FATAL_ERROR "opening + forward grew the RSS by ${CMAKE_MATCH_1} x the file size (limit 1.2)")
  endif()
  string(STRIP "${out}" stripped)
  if(NOT stripped MATCHES "\nbench memory: peak RSS [0-9]+\\.[0-9][0-9] GB, [0-9]+\\.[0-9][0-9][0-9] x file size \\(limit [0-9.]+\\)$")
    message(FATAL_ERROR "last line is not 'bench memory: peak RSS X GB, R x file size (limit L)'")
  endif()
endif()
