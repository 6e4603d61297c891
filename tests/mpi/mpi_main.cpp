// The main of the MPI test program, run by ctest under mpirun at np 1 to 4. Every rank runs every
// test case in declaration order (collectives must pair); rank 0 reports to the console, the
// others to catch_rank<r>.log, printed to stderr only when that rank failed; every rank exits with
// the worst result of all ranks, so mpirun's status is the job's.
#include <mpi.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <traincb/mpi.hpp>

#include "catch_run.hpp"

int main(int argc, char** argv) {
    traincb::MpiSession session(argc, argv);
    const int rank = traincb::MpiSession::world_rank();
    const std::string log = "catch_rank" + std::to_string(rank) + ".log";
    int result = traincb_catch_run(argc, argv, rank != 0 ? log.c_str() : nullptr);
    int worst = 0;
    MPI_Allreduce(&result, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank != 0 && result != 0) {
        std::ifstream in(log);
        std::stringstream text;
        text << in.rdbuf();
        std::cerr << "---- rank " << rank << " ----\n" << text.str() << std::flush;
    }
    if (rank != 0) std::remove(log.c_str());
    return worst;
}
