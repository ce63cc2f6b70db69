// MpiComm: Comm over MPI_COMM_WORLD (OpenMPI from Debian, the MPI ParaView uses). The ecnr tool links it when
// built with ECNR_WITH_MPI; Core's libraries never do.
#pragma once

#include "ecnr/Comm.h"

namespace ecnr {

/// MPI_Init on construction when the process was started by mpiexec (and MPI is not initialised yet),
/// MPI_Finalize on destruction if it initialised it. Outside mpiexec it is one rank and touches no MPI.
class MpiSession {
public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  /// The world when MPI runs, else one process alone.
  const Comm& world() const { return *world_; }

private:
  bool initialised_ = false;
  Comm* world_ = nullptr;
};

/// Whether this process is an MPI rank: a launcher's variables are set and its parent is a launcher (mpiexec,
/// orted, srun, ...), not a rank whose child inherited them. ECNR_MPI=1 / 0 overrides.
bool launchedByMpi();

}  // namespace ecnr

namespace ecnr {
/// Ends every rank of the job (MPI_Abort) after an error on one of them, so that none waits in a collective.
[[noreturn]] void abortAllRanks(int code);
}  // namespace ecnr
