// Quality: the modes a user of SZ3, ZFP or TTHRESH expects (beyond the paper). The network is trained as in
// the paper; then an error-bounded correction (Residual.h), sized from the measured error, delivers what was
// asked:
//   MaxError : every voxel within E of the original, on every decoder path (E minus the decoders' measured
//              disagreement is what the quantization gets; voxels it cannot bring within E are stored exactly).
//   Psnr     : the network sized (blocks per MLP, up to four trainings) to reach about P itself, then the largest
//              correction step that reaches P; the network with the fewest bytes in all is kept.
//   Ratio    : the network sized for networkShare of the byte budget (the same way), then the correction's step
//              chosen to fill what is left, so the archive lands within +-10 % of the ratio.
// At CR 50-300 the network's bytes buy far more PSNR than the correction's, so both modes size the network first
// and leave the correction the last fraction (BENCHMARKS.md, "Quality modes").
#pragma once

#include "ecnr/Encoder.h"
#include "ecnr/Metrics.h"

namespace ecnr {

/// encode() for every mode but Expert.
Model encodeWithQuality(const Field& field, const GridMeta& meta, const EncoderSettings& settings,
                        const Progress& progress, EncodeReport* report);

/// Each mode's correction on a trained network: `decoded` is its reference decode (Decoder::decodeAll, data
/// units, no correction). Fills model.residual (and its quality record) and returns the corrected decode's error.
/// correctToBound: every voxel within `bound` on every decode path (throws if the reference misses it);
/// correctToPsnr: at least `psnr` dB; correctToRatio: the archive at most raw / ratio bytes (the correction
/// gets what the network leaves).
ErrorStats correctToBound(Model& model, const Field& original, const Field& decoded, double bound);
ErrorStats correctToPsnr(Model& model, const Field& original, const Field& decoded, double psnr);
/// networkBytes: the model's archive size without the correction when the caller has it (0: serialized here).
/// fillRatio: the correction fills the archive up to raw / fillRatio bytes instead (0: no correction, the mode and
/// target recorded all the same).
ErrorStats correctToRatio(Model& model, const Field& original, const Field& decoded, double ratio,
                          const Progress& progress, uint64_t networkBytes = 0, double fillRatio = -1);

/// Largest |a - b| between the reference decode `ref` (Decoder::decodeAll, data units, without correction) and
/// the model's other decode paths: every time step alone, sub-extents, and each instruction set this CPU has for
/// the MLP and CNN kernels (on a sub-extent). Data units.
double measureDecoderSpread(const Model& model, const Field& ref);

/// Codes the correction of `decoded` towards `original` with this step (and bound, slack: Residual.h) into
/// c.steps, in parallel over time steps.
void codeCorrection(ResidualCorrection& c, const Field& original, const Field& decoded, double step, double bound,
                    double slack);

/// The largest step (log-bisection) with which decoded + correction reaches PSNR >= psnr over `range`; 0 when the
/// decode alone does.
double stepForPsnr(const Field& original, const Field& decoded, double range, double psnr);

}  // namespace ecnr
