// Rank 1 throws while the other ranks wait in a collective: traincb::MpiSession's destructor runs
// during unwinding and calls MPI_Abort, so mpirun ends the whole job within seconds instead of
// leaving the others waiting forever (which is what MPI_Finalize would do, measured). ctest passes
// when mpirun reports the abort, and fails on its --timeout message.
#include <mpi.h>

#include <stdexcept>
#include <traincb/mpi.hpp>

#include <iostream>

int main(int argc, char** argv) {
    // The usual shape of a main that reports errors: the session lives inside the try, so an
    // exception unwinds through its destructor (an exception that escapes main instead ends in
    // std::terminate, which mpirun also turns into the end of the job).
    try {
        traincb::MpiSession session(argc, argv);
        traincb::MpiCommunicator comm;
        if (comm.rank() == 1) throw std::runtime_error("rank 1 fails in its own step");
        comm.barrier();  // never completes: rank 1 is gone
    } catch (const std::exception& e) {
        std::cerr << "abort_probe: " << e.what() << "\n";  // not reached on rank 1: MPI_Abort ended it
        return 1;
    }
    return 0;
}
