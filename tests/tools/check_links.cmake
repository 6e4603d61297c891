# Every relative link of README.md and docs/*.md resolves to a file of the repository, and no
# tracked text names a path outside it (a sibling checkout, a machine's absolute path).
#   cmake -DSOURCE_DIR=<repository> -P check_links.cmake
file(GLOB _docs "${SOURCE_DIR}/README.md" "${SOURCE_DIR}/docs/*.md" "${SOURCE_DIR}/tests/spec/*.md"
     "${SOURCE_DIR}/examples/data/*.md")
set(_bad "")
set(_count 0)
foreach(_doc IN LISTS _docs)
  file(READ "${_doc}" _text)
  get_filename_component(_dir "${_doc}" DIRECTORY)
  # Code is not prose: drop fenced blocks and inline code spans, then brackets and ';', which
  # CMake lists treat specially, become plain markers.
  string(REGEX REPLACE "```[^`]*```" "" _text "${_text}")
  string(REGEX REPLACE "`[^`\n]*`" "" _text "${_text}")
  string(REPLACE ";" "," _text "${_text}")
  string(REPLACE "](" "<LINK>" _text "${_text}")
  string(REPLACE "[" "<" _text "${_text}")
  string(REPLACE "]" ">" _text "${_text}")
  string(REGEX MATCHALL "<LINK>[^)\n]+\\)" _links "${_text}")
  foreach(_link IN LISTS _links)
    string(REGEX REPLACE "^<LINK>([^)#]*)(#[^)]*)?\\)$" "\\1" _target "${_link}")
    if(_target STREQUAL "" OR _target MATCHES "^[a-z]+:")  # an anchor in the page, or a URL
      continue()
    endif()
    math(EXPR _count "${_count} + 1")
    if(NOT EXISTS "${_dir}/${_target}")
      string(APPEND _bad "  ${_doc}: ${_link} does not resolve\n")
    else()
      get_filename_component(_real "${_dir}/${_target}" REALPATH)
      string(FIND "${_real}" "${SOURCE_DIR}/" _inside)
      if(NOT _inside EQUAL 0 AND NOT _real STREQUAL "${SOURCE_DIR}")
        string(APPEND _bad "  ${_doc}: ${_link} points outside the repository\n")
      endif()
    endif()
  endforeach()
endforeach()

# No tracked file names the sibling "shared" folder or an absolute path of a work machine.
find_program(GIT git)
if(GIT AND EXISTS "${SOURCE_DIR}/.git")
  set(_sibling "\\.\\./shar")
  set(_machine "/wor")
  execute_process(COMMAND "${GIT}" -C "${SOURCE_DIR}" grep -n -I -E "${_sibling}ed/|${_machine}k/"
                  OUTPUT_VARIABLE _hits RESULT_VARIABLE _rc)
  if(_rc EQUAL 0)
    string(APPEND _bad "tracked files name paths outside the repository:\n${_hits}")
  endif()
endif()

if(NOT _bad STREQUAL "")
  message(FATAL_ERROR "broken or outside references:\n${_bad}")
endif()
message(STATUS "${_count} relative links, all inside the repository")
