# Unit tests: every test/<module>/test_*.c is one executable, mirroring src/<module>/. A test
# is a white-box test of its module: it alone outside the module also sees the module's
# private headers (src/<module>/internal/). A test that did not run (a missing model, no
# PostgreSQL server) exits 77, which ctest reports as skipped, not passed.
file(GLOB HL_UNIT_TESTS CONFIGURE_DEPENDS test/*/test_*.c)
foreach(src ${HL_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  get_filename_component(dir ${src} DIRECTORY)
  get_filename_component(module ${dir} NAME)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE test src/${module}/internal)
  target_link_libraries(${name} PRIVATE hlcli)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
    ENVIRONMENT "HL_SRC_DIR=${CMAKE_SOURCE_DIR};HL_BIN=$<TARGET_FILE:hybridllm>")
endforeach()

# Fuzz targets: test/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput. With HL_FUZZ they
# become libFuzzer binaries (scripts/fuzz.sh runs them); in every build a replay driver runs
# them over their corpus (test/fuzz/corpus/<name>/) as part of the normal test run. A target
# that reads a module's private headers names the module here:
set(HL_FUZZ_PRIVATE_upstream_http providers)
file(GLOB HL_FUZZ_TARGETS CONFIGURE_DEPENDS test/fuzz/fuzz_*.c)
foreach(src ${HL_FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  string(REPLACE "fuzz_" "" short ${name})
  set(private "")
  foreach(m ${HL_FUZZ_PRIVATE_${short}})
    list(APPEND private src/${m}/internal)
  endforeach()
  add_executable(replay_${short} ${src} test/fuzz/replay.c)
  target_include_directories(replay_${short} PRIVATE ${private})
  target_link_libraries(replay_${short} PRIVATE hlcore)
  add_test(NAME replay_${short}
    COMMAND replay_${short} ${CMAKE_SOURCE_DIR}/test/fuzz/corpus/${short})
  set_tests_properties(replay_${short} PROPERTIES TIMEOUT 300)
  if(HL_FUZZ)
    add_executable(${name} ${src})
    target_include_directories(${name} PRIVATE ${private})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE hlcore)
  endif()
endforeach()
