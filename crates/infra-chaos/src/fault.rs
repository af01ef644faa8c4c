//! What an experiment does to the calls it hits, or to the process while it runs.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::action::Actions;

/// The kinds of experiment (the seed's `ChaosExperimentType`), for reports and for the seed's
/// `inject_chaos(service, kind)`, which applies only experiments of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExperimentKind {
    /// Added latency.
    Latency,
    /// Injected errors.
    Error,
    /// Panics at the point.
    Panic,
    /// Memory, CPU, file descriptors or disk held while the experiment runs.
    ResourceExhaustion,
    /// A dependency that fails or hangs.
    DependencyFailure,
    /// A fail-rs action chain.
    Failpoint,
    /// A partition or degraded network, through the fault proxy.
    Network,
}

impl ExperimentKind {
    /// The kind in snake case, as metric labels write it: `latency`, `error`, `panic`,
    /// `resource_exhaustion`, `dependency_failure`, `failpoint`, `network`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentKind::Latency => "latency",
            ExperimentKind::Error => "error",
            ExperimentKind::Panic => "panic",
            ExperimentKind::ResourceExhaustion => "resource_exhaustion",
            ExperimentKind::DependencyFailure => "dependency_failure",
            ExperimentKind::Failpoint => "failpoint",
            ExperimentKind::Network => "network",
        }
    }
}

/// How much latency to add on each hit.
#[derive(Debug, Clone, PartialEq)]
pub enum LatencyProfile {
    /// Always this long.
    Fixed(Duration),
    /// Uniform between the two bounds (jitter).
    Uniform {
        /// The least added.
        min: Duration,
        /// The most added.
        max: Duration,
    },
    /// Exponentially distributed around `mean`, capped at `max`: mostly short, with a tail.
    Exponential {
        /// The mean added latency.
        mean: Duration,
        /// The cap.
        max: Duration,
    },
    /// Drawn from weighted values (an empirical distribution: say 90% 1 ms, 9% 20 ms, 1% 500 ms).
    Weighted(Vec<(Duration, u32)>),
}

impl LatencyProfile {
    /// The latency for a uniform draw in `[0, 1)`.
    pub(crate) fn sample(&self, draw: f64) -> Duration {
        match self {
            LatencyProfile::Fixed(latency) => *latency,
            LatencyProfile::Uniform { min, max } => *min + max.saturating_sub(*min).mul_f64(draw),
            LatencyProfile::Exponential { mean, max } => mean.mul_f64(-(1.0 - draw).ln()).min(*max),
            LatencyProfile::Weighted(values) => {
                let total: u64 = values.iter().map(|(_, weight)| u64::from(*weight)).sum();
                let mut target = (draw * total as f64) as u64;
                for (latency, weight) in values {
                    if target < u64::from(*weight) {
                        return *latency;
                    }
                    target -= u64::from(*weight);
                }
                values.last().map_or(Duration::ZERO, |(latency, _)| *latency)
            }
        }
    }

    pub(crate) fn is_valid(&self) -> bool {
        match self {
            LatencyProfile::Fixed(_) => true,
            LatencyProfile::Uniform { min, max } => min <= max,
            LatencyProfile::Exponential { mean, max } => !mean.is_zero() && mean <= max,
            LatencyProfile::Weighted(values) => values.iter().any(|(_, weight)| *weight > 0),
        }
    }
}

/// Makes the error a point returns, for experiments that inject the caller's own error type.
pub type ErrorFactory = Arc<dyn Fn() -> Box<dyn std::error::Error + Send + Sync> + Send + Sync>;

/// A process resource held for the duration of an experiment, released when it ends however it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// Allocate and touch this many MiB (so the pages are really resident).
    Memory {
        /// Mebibytes to hold.
        mebibytes: usize,
    },
    /// Spin `threads` threads, each busy `duty_percent` of every 10 ms.
    Cpu {
        /// Spinning threads.
        threads: usize,
        /// Busy share of each 10 ms period, 1..=100.
        duty_percent: u8,
    },
    /// Hold this many open file descriptors.
    FileDescriptors {
        /// Descriptors to hold.
        count: usize,
    },
    /// Write a file of this many MiB in `dir`, removed at the end.
    Disk {
        /// Where the file goes.
        dir: PathBuf,
        /// Mebibytes to write.
        mebibytes: usize,
    },
}

/// What an experiment injects.
#[derive(Clone)]
pub enum Fault {
    /// Add latency at the point.
    Latency(LatencyProfile),
    /// Fail the point with [`ChaosError::Injected`](crate::ChaosError::Injected).
    Error,
    /// Fail the point with an error of the caller's making ([`ChaosError::Custom`](crate::ChaosError::Custom)).
    CustomError(ErrorFactory),
    /// Panic at the point (the engine must allow panics).
    Panic(String),
    /// The named dependency is down: the point fails with
    /// [`ChaosError::DependencyUnavailable`](crate::ChaosError::DependencyUnavailable), after hanging for
    /// `hang` (a dependency that times out rather than refuses).
    Dependency {
        /// The dependency's name, for the error.
        name: String,
        /// How long the call hangs before failing.
        hang: Duration,
    },
    /// Hold a resource while the experiment runs; points are not affected.
    Exhaust(Resource),
    /// A fail-rs action chain.
    Actions(Arc<Actions>),
    /// Toxics on a fault-proxy proxy while the experiment runs (feature `proxy`): a partition or a
    /// degraded link; points are not affected.
    #[cfg(feature = "proxy")]
    Network(crate::proxy::NetworkFault),
}

impl Fault {
    /// The kind of experiment this fault makes.
    pub fn kind(&self) -> ExperimentKind {
        match self {
            Fault::Latency(_) => ExperimentKind::Latency,
            Fault::Error | Fault::CustomError(_) => ExperimentKind::Error,
            Fault::Panic(_) => ExperimentKind::Panic,
            Fault::Dependency { .. } => ExperimentKind::DependencyFailure,
            Fault::Exhaust(_) => ExperimentKind::ResourceExhaustion,
            Fault::Actions(_) => ExperimentKind::Failpoint,
            #[cfg(feature = "proxy")]
            Fault::Network(_) => ExperimentKind::Network,
        }
    }
}

impl Fault {
    /// Whether injection points see this fault (resource and network faults act elsewhere).
    pub(crate) fn affects_points(&self) -> bool {
        match self {
            Fault::Exhaust(_) => false,
            #[cfg(feature = "proxy")]
            Fault::Network(_) => false,
            _ => true,
        }
    }
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Latency(profile) => f.debug_tuple("Latency").field(profile).finish(),
            Fault::Error => f.write_str("Error"),
            Fault::CustomError(_) => f.write_str("CustomError(..)"),
            Fault::Panic(message) => f.debug_tuple("Panic").field(message).finish(),
            Fault::Dependency { name, hang } => {
                f.debug_struct("Dependency").field("name", name).field("hang", hang).finish()
            }
            Fault::Exhaust(resource) => f.debug_tuple("Exhaust").field(resource).finish(),
            Fault::Actions(actions) => f.debug_tuple("Actions").field(&actions.as_str()).finish(),
            #[cfg(feature = "proxy")]
            Fault::Network(network) => f.debug_tuple("Network").field(network).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_sample_within_their_bounds() {
        let ms = Duration::from_millis;
        let uniform = LatencyProfile::Uniform { min: ms(10), max: ms(20) };
        assert_eq!(uniform.sample(0.0), ms(10));
        assert_eq!(uniform.sample(0.5), ms(15));
        let exponential = LatencyProfile::Exponential { mean: ms(10), max: ms(50) };
        assert_eq!(exponential.sample(0.0), Duration::ZERO);
        assert_eq!(exponential.sample(0.999_999), ms(50), "capped");
        let weighted = LatencyProfile::Weighted(vec![(ms(1), 9), (ms(100), 1)]);
        assert_eq!(weighted.sample(0.5), ms(1));
        assert_eq!(weighted.sample(0.95), ms(100));
        assert!(!LatencyProfile::Uniform { min: ms(2), max: ms(1) }.is_valid());
        assert!(!LatencyProfile::Weighted(vec![(ms(1), 0)]).is_valid());
    }
}
