# Unit tests: every test/<module>/test_*.c is one executable, mirroring src/<module>/.
file(GLOB HL_UNIT_TESTS CONFIGURE_DEPENDS test/*/test_*.c)
foreach(src ${HL_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE test)
  target_link_libraries(${name} PRIVATE hlcore)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 120
    ENVIRONMENT "HL_SRC_DIR=${CMAKE_SOURCE_DIR};HL_BIN=$<TARGET_FILE:hybridllm>")
endforeach()

# Fuzz targets: test/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput. With HL_FUZZ they
# become libFuzzer binaries; in every build a replay driver runs them over their corpus
# (test/fuzz/corpus/<name>/) as part of the normal test run.
file(GLOB HL_FUZZ_TARGETS CONFIGURE_DEPENDS test/fuzz/fuzz_*.c)
foreach(src ${HL_FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  string(REPLACE "fuzz_" "" short ${name})
  add_executable(replay_${short} ${src} test/fuzz/replay.c)
  target_link_libraries(replay_${short} PRIVATE hlcore)
  add_test(NAME replay_${short}
    COMMAND replay_${short} ${CMAKE_SOURCE_DIR}/test/fuzz/corpus/${short})
  set_tests_properties(replay_${short} PROPERTIES TIMEOUT 300)
  if(HL_FUZZ)
    add_executable(${name} ${src})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${name} PRIVATE hlcore)
  endif()
endforeach()
