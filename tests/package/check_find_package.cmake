# Installs trainscope into ${BINARY_DIR}/package-test/prefix and builds examples/ against it as a
# separate project, the way a user's project would with find_package(trainscope).
set(work ${BINARY_DIR}/package-test)
file(REMOVE_RECURSE ${work})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${work}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples -B ${work}/build -G ${GENERATOR}
                        -DCMAKE_PREFIX_PATH=${work}/prefix -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring examples/ against the installed package failed (${rc})")
endif()
# The quickstart and one example of the newer API (named inputs): each example is a heavy
# translation unit, and the test suite builds and runs them all in-tree.
execute_process(COMMAND ${CMAKE_COMMAND} --build ${work}/build --target quickstart two_inputs
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building examples/ against the installed package failed (${rc})")
endif()
execute_process(COMMAND ${work}/build/quickstart --limit 600 --epochs 1 RESULT_VARIABLE rc
                WORKING_DIRECTORY ${work})
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the example built against the installed package failed to run (${rc})")
endif()
