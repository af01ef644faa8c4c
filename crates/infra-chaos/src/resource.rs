//! Holding process resources for resource-exhaustion experiments, and giving every bit of them back.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::fault::Resource;

const MIB: usize = 1 << 20;
/// The CPU hog's period: busy for the duty share of it, asleep for the rest.
const CPU_PERIOD: Duration = Duration::from_millis(10);

/// A resource being held; dropping it releases everything (memory freed, threads joined, files closed and
/// removed).
#[derive(Debug)]
pub(crate) enum Hold {
    Memory(Vec<u8>),
    Cpu {
        stop: Arc<AtomicBool>,
        threads: Vec<JoinHandle<()>>,
    },
    Files(Vec<File>),
    Disk(PathBuf),
    /// Toxics installed on a fault-proxy proxy, removed on drop.
    #[cfg(feature = "proxy")]
    Network {
        server: crate::proxy::ProxyServer,
        proxy: String,
        toxics: Vec<String>,
    },
}

impl Resource {
    /// Checks the request before anything is taken.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            Resource::Memory { mebibytes: 0 } => Err("memory of 0 MiB".into()),
            Resource::Cpu { threads: 0, .. } => Err("cpu with 0 threads".into()),
            Resource::Cpu { duty_percent, .. } if !(1..=100).contains(duty_percent) => {
                Err(format!("cpu duty {duty_percent}% is outside 1..=100"))
            }
            Resource::FileDescriptors { count: 0 } => Err("0 file descriptors".into()),
            Resource::Disk { mebibytes: 0, .. } => Err("a disk fill of 0 MiB".into()),
            _ => Ok(()),
        }
    }

    /// Takes the resource. A failure midway gives back what was taken before returning the error.
    pub(crate) fn hold(&self, tag: &str) -> Result<Hold, String> {
        match self {
            Resource::Memory { mebibytes } => {
                let bytes = mebibytes.checked_mul(MIB).ok_or("memory size overflows")?;
                let mut memory = Vec::new();
                memory.try_reserve_exact(bytes).map_err(|err| format!("cannot allocate {mebibytes} MiB: {err}"))?;
                memory.resize(bytes, 0);
                // Fresh pages are mapped lazily; writing one byte in each makes them resident.
                for page in memory.chunks_mut(4096) {
                    page[0] = 1;
                }
                std::hint::black_box(&memory);
                Ok(Hold::Memory(memory))
            }
            Resource::Cpu { threads, duty_percent } => {
                let stop = Arc::new(AtomicBool::new(false));
                let busy = CPU_PERIOD.mul_f64(f64::from(*duty_percent) / 100.0);
                let mut spinning = Vec::with_capacity(*threads);
                for n in 0..*threads {
                    let stop_flag = Arc::clone(&stop);
                    let spawned = std::thread::Builder::new()
                        .name(format!("infra-chaos-cpu-{n}"))
                        .spawn(move || spin(&stop_flag, busy));
                    match spawned {
                        Ok(handle) => spinning.push(handle),
                        Err(err) => {
                            drop(Hold::Cpu { stop, threads: spinning });
                            return Err(format!("cannot start cpu thread {n}: {err}"));
                        }
                    }
                }
                Ok(Hold::Cpu { stop, threads: spinning })
            }
            Resource::FileDescriptors { count } => {
                let mut files = Vec::with_capacity(*count);
                for n in 0..*count {
                    match File::open("/dev/null") {
                        Ok(file) => files.push(file),
                        Err(err) => return Err(format!("opened {n} of {count} descriptors, then: {err}")),
                    }
                }
                Ok(Hold::Files(files))
            }
            Resource::Disk { dir, mebibytes } => {
                let path = dir.join(format!("infra-chaos-{}-{tag}.fill", std::process::id()));
                let hold = Hold::Disk(path.clone());
                let mut file = File::create(&path).map_err(|err| format!("cannot create {}: {err}", path.display()))?;
                let chunk = vec![0xA5u8; MIB];
                for written in 0..*mebibytes {
                    if let Err(err) = file.write_all(&chunk) {
                        drop(hold);
                        return Err(format!("wrote {written} of {mebibytes} MiB to {}, then: {err}", path.display()));
                    }
                }
                file.sync_all().map_err(|err| format!("cannot sync {}: {err}", path.display()))?;
                Ok(hold)
            }
        }
    }
}

/// Busy for `busy` of every period until told to stop.
fn spin(stop: &AtomicBool, busy: Duration) {
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        while started.elapsed() < busy {
            std::hint::spin_loop();
        }
        let rest = CPU_PERIOD.saturating_sub(busy);
        if !rest.is_zero() {
            std::thread::sleep(rest);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        match self {
            Hold::Memory(memory) => *memory = Vec::new(),
            Hold::Cpu { stop, threads } => {
                stop.store(true, Ordering::Relaxed);
                for thread in threads.drain(..) {
                    let _ = thread.join();
                }
            }
            Hold::Files(files) => files.clear(),
            Hold::Disk(path) => {
                let _ = std::fs::remove_file(path);
            }
            #[cfg(feature = "proxy")]
            Hold::Network { server, proxy, toxics } => {
                for toxic in toxics.iter() {
                    let _ = server.remove_toxic(proxy, toxic);
                }
            }
        }
    }
}
