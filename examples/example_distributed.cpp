// example_distributed: example_breast_cancer trained data-parallel over MPI, one process per rank.
//
//   mpirun -np 4 example_distributed --out DIR [--resume] [--epochs 300] [--patience 20]
//                                    [--batch-size 16] [--seed 1] [--json]
//
// The same data, split, standardisation, MLP, Adam, callbacks and files as example_breast_cancer
// (examples/common/breast_cancer.hpp): every rank loads the whole data set, and Trainer
// (FitOptions::communicator) gives each rank its share of every step, batch_size rows per rank, so
// a step covers batch_size x ranks rows. The model sums its gradients over the ranks before each
// Adam step (Mlp::set_gradient_communicator, on a communicator of its own), so every rank applies
// the same update and ends with the same weights; the epoch's loss and metrics are reduced exactly
// over the ranks, so EarlyStopping and ModelCheckpoint decide the same everywhere.
//
// SIGTERM or Ctrl-C on any one rank interrupts every rank after the same batch: last.safetensors
// is saved and every rank exits with 130; `--resume` continues, on any number of ranks (a warning
// names both numbers when it differs). An error on one rank (a failed write, a bad checkpoint)
// ends every rank with it: rank 0 prints it and every rank exits with 1. An exception that
// escapes main ends the whole job (traincb::MpiSession calls MPI_Abort).
//
// With --json, rank 0 prints one JSON line last: example_breast_cancer's summary plus world_size,
// interrupted, rank_steps (every rank's Adam step count) and weights_agree (every rank's final
// weights are bit-equal, checked collectively).
#include <algorithm>
#include <array>
#include <csignal>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <traincb/detail/hash.hpp>
#include <traincb/mpi.hpp>
#include <traincb/trainer.hpp>
#include <vector>

#include "common/breast_cancer.hpp"
#include "common/cli.hpp"

namespace {

using traincb_examples::Mlp;

// Runs `step` on every rank, then agrees on its outcome: when it threw on any rank, every rank
// throws (the lowest failing rank its own exception, every other rank a traincb::RemoteRankError
// with that rank's message), so no rank is left waiting in a later collective. For the work done
// outside Trainer::fit, whose own errors already reach every rank this way.
template <class F>
void on_every_rank(traincb::Communicator& comm, F&& step) {
    std::exception_ptr error;
    try {
        step();
    } catch (...) {
        error = std::current_exception();
    }
    // The lowest failing rank, as size - rank so that a maximum finds it (0: none failed).
    std::array<std::int64_t, 1> failed{error ? comm.size() - comm.rank() : 0};
    comm.max_int64(failed);
    if (failed[0] == 0) return;
    const auto root = static_cast<int>(comm.size() - failed[0]);
    std::vector<std::byte> msg;
    if (comm.rank() == root) {
        std::string text = "unknown error";
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            text = e.what();
        } catch (...) {
        }
        const auto* b = reinterpret_cast<const std::byte*>(text.data());
        msg.assign(b, b + text.size());
    }
    comm.broadcast_resize(msg, root);
    if (comm.rank() == root) std::rethrow_exception(error);
    throw traincb::RemoteRankError(root, std::string(reinterpret_cast<const char*>(msg.data()), msg.size()));
}

// XXH64 of every weight and bias of the model, bit for bit.
std::uint64_t weights_hash(const Mlp& model) {
    traincb::detail::Xxh64 h;
    for (std::size_t l = 0; l < model.num_layers(); ++l) {
        h.update(std::as_bytes(std::span(model.weight(l).data(), static_cast<std::size_t>(model.weight(l).size()))));
        h.update(std::as_bytes(std::span(model.bias(l).data(), static_cast<std::size_t>(model.bias(l).size()))));
    }
    return h.digest();
}

// True on every rank when every rank's weights are bit-equal: the maximum and the minimum of the
// ranks' hashes agree (the minimum as the maximum of the negated values).
bool weights_agree(traincb::Communicator& comm, const Mlp& model) {
    const auto h = static_cast<std::int64_t>(weights_hash(model) >> 2U);  // 62 bits: negation never overflows
    std::array<std::int64_t, 2> v{h, -h};
    comm.max_int64(v);
    return v[0] == -v[1];
}

// Every rank's Adam step count, in rank order (on every rank).
std::vector<std::int64_t> rank_steps(traincb::Communicator& comm, const Mlp& model) {
    std::vector<std::int64_t> steps(static_cast<std::size_t>(comm.size()), 0);
    steps[static_cast<std::size_t>(comm.rank())] = model.step();
    comm.sum_int64(steps);
    return steps;
}

}  // namespace

int main(int argc, char** argv) {
    std::string out = "distributed_run";
    int epochs = 300;
    int patience = 20;
    int batch_size = 16;
    int seed = 1;
    bool json = false;
    bool quiet = false;
    bool resume = false;
    int kill_rank = -1;
    int kill_at_epoch = 0;
    traincb_examples::Cli cli("example_distributed",
                              "Trains example_breast_cancer's MLP data-parallel over MPI (run it under mpirun).");
    cli.flag("out", out, "output directory (history.csv, checkpoints/, tensorboard/, report.html are written there)");
    cli.flag("resume", resume,
             "continue from the newest valid checkpoint in DIR/checkpoints, on any number of ranks (fresh run if "
             "there is none)");
    cli.flag("epochs", epochs, "maximum number of epochs");
    cli.flag("patience", patience, "EarlyStopping patience on val_loss");
    cli.flag("batch-size", batch_size, "samples per batch on each rank (a step covers batch-size x ranks rows)");
    cli.flag("seed", seed, "seed for the split, the initial weights and the shuffling");
    cli.flag("quiet", quiet, "no per-epoch console lines");
    cli.flag("json", json, "rank 0 prints a one-line JSON summary as the last line");
    cli.flag("kill-rank", kill_rank, "signal tests: this rank sends itself SIGTERM (-1: none)");
    cli.flag("kill-at-epoch", kill_at_epoch, "signal tests: ... after the second batch of this epoch (0-based)");
    cli.parse_or_exit(argc, argv);

    // After the flags, so that --help and a bad flag need no MPI. An exception that escapes main
    // from here on ends every rank (MPI_Abort) instead of leaving them waiting.
    traincb::MpiSession session(argc, argv);
    traincb::MpiCommunicator comm;       // traincb's votes, reductions and broadcasts
    traincb::MpiCommunicator grad_comm;  // the model's gradient sums, on a duplicate of their own
    const bool primary = comm.rank() == 0;
    try {
        using namespace traincb_examples;
        namespace fs = std::filesystem;
        const auto useed = static_cast<std::uint64_t>(seed);
        std::optional<BreastCancerData> data;
        std::optional<Mlp> model;
        std::optional<BreastCancerCallbacks> run;
        on_every_rank(comm, [&] {
            data.emplace(load_breast_cancer(useed));
            model.emplace(breast_cancer_model(data->x.cols(), useed));
            fs::create_directories(out);
            run.emplace(BreastCancerRunOptions{.out = out,
                                               .patience = patience,
                                               .console = !quiet && primary,  // one copy of each epoch's line
                                               .title = "example_distributed"});
        });
        model->set_gradient_communicator(&grad_comm);
        traincb::CallbackList callbacks(run->early_stopping, run->checkpoint, run->mark_saves, run->report);
        // On every rank (the ranks must run the same callbacks), acting on --kill-rank only.
        const bool killer = kill_rank == comm.rank();
        traincb::LambdaCallback kill({.on_train_batch_end = [killer, kill_at_epoch](traincb::Context& ctx) {
            if (killer && ctx.epoch() == kill_at_epoch && ctx.batch() == 1) std::raise(SIGTERM);
        }});
        if (kill_rank >= 0) callbacks.add(kill);
        callbacks.add(run->logger);  // last, so that it logs what the other callbacks added

        traincb::FitOptions<double> options = breast_cancer_fit_options(
            *data, epochs, batch_size, useed, resume ? BreastCancerCallbacks::checkpoints_dir(out) : fs::path(), false);
        options.communicator = &comm;
        // Every error inside fit reaches every rank together (the failing rank its own exception,
        // the others RemoteRankError), and an interruption ends every rank after the same batch.
        const traincb::History history = traincb::Trainer(*model).fit(data->x, data->y, options, callbacks);

        const bool agree = weights_agree(comm, *model);
        const std::vector<std::int64_t> steps = rank_steps(comm, *model);
        nlohmann::json summary;
        const bool interrupted = history.end.kind == traincb::EndKind::Interrupted;
        if (interrupted) {
            if (primary)
                std::cout << "\ninterrupted (" << history.end.reason << "): the state is saved in "
                          << run->checkpoint.last_model_path().string() << "; continue with --resume\n";
            summary["epochs_run"] = history.size();
            summary["stop_reason"] = history.end.reason;
        } else {
            // Held-out test set, with the best epoch's weights (restored by EarlyStopping).
            const BreastCancerTest test = evaluate_breast_cancer(*model, *data);
            if (primary) print_breast_cancer_summary(std::cout, history, *run, test, out);
            summary = breast_cancer_json(history, *run, test);
        }
        if (json && primary) {
            summary["world_size"] = comm.size();
            summary["interrupted"] = interrupted;
            summary["rank_steps"] = steps;
            summary["weights_agree"] = agree;
            print_json_summary(summary);
        }
        return interrupted ? 130 : 0;
    } catch (const traincb::NoValidCheckpointError& e) {
        if (primary)
            std::cerr << "example_distributed: error: " << e.what()
                      << "\n(nothing was written; move the invalid checkpoints away to start a fresh run)\n";
        return 1;
    } catch (const std::exception& e) {
        // Every rank is here (see on_every_rank and fit): rank 0 reports, with the failing rank's
        // message when it is another one (traincb::RemoteRankError).
        if (primary) std::cerr << "example_distributed: error: " << e.what() << '\n';
        return 1;
    }
}
