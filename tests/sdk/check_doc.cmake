# Fails when a generated document differs from what the code generates now.
#   -DGRAFT=<graft binary> -DARGS="help;--markdown" -DDOC=<docs/x.md> [-DUPDATE=1: rewrite DOC]
# The plugin search path is the build's own plugin directory only: GRAFT_PLUGIN_PATH from the
# environment would add plugins (and their keys) the documentation does not describe.
unset(ENV{GRAFT_PLUGIN_PATH})
execute_process(COMMAND ${GRAFT} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE now ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "graft ${ARGS} exited ${rc}: ${err}")
endif()
if(UPDATE)
  file(WRITE "${DOC}" "${now}")
  message(STATUS "wrote ${DOC}")
  return()
endif()
if(NOT EXISTS "${DOC}")
  message(FATAL_ERROR "${DOC} does not exist; generate it: cmake --build <build> --target update-docs")
endif()
file(READ "${DOC}" doc)
if(NOT doc STREQUAL now)
  get_filename_component(name "${DOC}" NAME)
  set(fresh "${CMAKE_CURRENT_BINARY_DIR}/${name}.generated")
  file(WRITE "${fresh}" "${now}")
  execute_process(COMMAND diff -u "${DOC}" "${fresh}")
  message(FATAL_ERROR "${DOC} differs from `graft ${ARGS}` (diff above: - document, + code). "
          "Regenerate it with: cmake --build <build> --target update-docs")
endif()
string(LENGTH "${doc}" n)
message(STATUS "${DOC}: equal to `graft ${ARGS}` (${n} bytes)")
