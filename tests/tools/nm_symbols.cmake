# traincb_defined_symbols(OBJECT REGEX OUT WHO): the lines of `nm -C OBJECT` that match REGEX (a
# regular expression over nm's "address type name" lines; pick the defined types, as an undefined
# `U` reference has no address), in OUT. WHO names the calling check in an error. Needs NM.
function(traincb_defined_symbols object regex out who)
  execute_process(COMMAND "${NM}" -C "${object}" RESULT_VARIABLE rc OUTPUT_VARIABLE symbols ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${who}: ${NM} -C ${object} failed (${rc}): ${err}")
  endif()
  string(REGEX MATCHALL "${regex}" found "${symbols}")
  set(${out} "${found}" PARENT_SCOPE)
endfunction()
