# Runs the abort probe under mpirun and passes when the job ended through MpiSession's MPI_Abort:
# mpirun's exit status is then the abort code, 1 (an exception escaping main would give 134, and
# a session that finalized instead of aborting would hang until mpirun's --timeout, which prints
# "time limit"). mpirun's own "MPI_ABORT was invoked" text is not relied upon: Open MPI 4.1 drops
# it now and then ("ORTE_ERROR_LOG: Out of resource ... show_help.c").
# Invoked by ctest with -DCOMMAND=<mpirun;args;...>.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 1 OR "${out}${err}" MATCHES "time limit")
  message(FATAL_ERROR "expected the job to end through MPI_Abort with code 1, got exit status '${rc}'")
endif()
message("the job ended through MPI_Abort (exit status 1)")
