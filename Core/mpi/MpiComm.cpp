#include "MpiComm.h"

#include <mpi.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>

namespace ecnr {

namespace {

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(std::string("MPI: ") + what + " failed");
}

// MPI counts and displacements are ints: a gather of more values needs a chunked exchange (not written yet).
void checkCount(size_t total) {
  if (total > size_t(std::numeric_limits<int>::max()))
    throw std::runtime_error("MPI: a gather of " + std::to_string(total) + " values exceeds MPI's int counts");
}

class MpiComm final : public Comm {
public:
  MpiComm() {
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void sum(double* v, size_t n) const override {
    if (n > 0) check(MPI_Allreduce(MPI_IN_PLACE, v, int(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  void sum(int64_t* v, size_t n) const override {
    if (n > 0) check(MPI_Allreduce(MPI_IN_PLACE, v, int(n), MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  void sum(float* v, size_t n) const override {
    std::vector<double> d(v, v + n);
    sum(d.data(), n);
    for (size_t i = 0; i < n; ++i) v[i] = float(d[i]);
  }
  std::vector<float> gather(const std::vector<float>& mine) const override { return gatherAs(mine, MPI_FLOAT); }
  std::vector<double> gather(const std::vector<double>& mine) const override { return gatherAs(mine, MPI_DOUBLE); }
  std::vector<float> gatherAtRoot(const std::vector<float>& mine) const override {
    return gatherAs(mine, MPI_FLOAT, 0);
  }
  void barrier() const override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

private:
  // Every rank's values in rank order: on every rank (root < 0, MPI_Allgatherv) or on `root` only (MPI_Gatherv).
  template <class T>
  std::vector<T> gatherAs(const std::vector<T>& mine, MPI_Datatype type, int root = -1) const {
    int n = int(mine.size());
    std::vector<int> counts(static_cast<size_t>(size_)), offsets(static_cast<size_t>(size_), 0);
    if (root < 0) check(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
    else check(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, root, MPI_COMM_WORLD), "MPI_Gather");
    size_t total = 0;
    for (int r = 0; r < size_; ++r) {
      offsets[size_t(r)] = int(total);
      total += size_t(counts[size_t(r)]);
    }
    checkCount(total);
    std::vector<T> all(root < 0 || rank_ == root ? total : 0);
    if (root < 0)
      check(MPI_Allgatherv(mine.data(), n, type, all.data(), counts.data(), offsets.data(), type, MPI_COMM_WORLD),
            "MPI_Allgatherv");
    else
      check(MPI_Gatherv(mine.data(), n, type, all.data(), counts.data(), offsets.data(), type, root, MPI_COMM_WORLD),
            "MPI_Gatherv");
    return all;
  }
  int rank_ = 0, size_ = 1;
};

}  // namespace

bool launchedByMpi() {
  if (const char* force = std::getenv("ECNR_MPI")) return std::string(force) != "0";  // 1: always, 0: never
  bool rankVariables = false;
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    rankVariables = rankVariables || std::getenv(v) != nullptr;
  if (!rankVariables) return false;
  // A rank's children (a pvbatch script running `ecnr generate`) inherit these variables but are no ranks: only a
  // process whose parent is a launcher starts MPI.
  std::ifstream comm("/proc/" + std::to_string(::getppid()) + "/comm");
  std::string parent;
  std::getline(comm, parent);
  for (const char* launcher : {"mpiexec", "mpirun", "orterun", "orted", "prte", "prted", "prterun", "hydra_pmi_proxy",
                               "pmi_proxy", "srun", "slurmstepd"})
    if (parent == launcher) return true;
  return parent.empty();  // unknown parent: trust the variables
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int already = 0;
  MPI_Initialized(&already);
  if (!already && launchedByMpi()) {
    check(MPI_Init(argc, argv), "MPI_Init");
    initialised_ = true;
  }
  if (already || initialised_) world_ = new MpiComm();
  else world_ = new Comm();
}

MpiSession::~MpiSession() {
  delete world_;
  if (initialised_) MPI_Finalize();
}

}  // namespace ecnr

namespace ecnr {
void abortAllRanks(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}
}  // namespace ecnr
