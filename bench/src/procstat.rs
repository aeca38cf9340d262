//! What a process has used, read from `/proc/<pid>/`: CPU time (`stat`'s utime + stime) and
//! memory (`status`'s `VmRSS` and `VmHWM`, the peak resident set).

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`sysconf(_SC_CLK_TCK)`: 100 on every
/// Linux this runs on; `getconf CLK_TCK` says so).
const TICKS_PER_SECOND: u64 = 100;

/// Why a process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read (the process is gone?).
    #[error("reading /proc/{pid}/{file}: {source}")]
    Read {
        /// The process.
        pid: u32,
        /// The file under `/proc/<pid>/`.
        file: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file did not hold what it should.
    #[error("/proc/{pid}/{file} is not as expected")]
    Format {
        /// The process.
        pid: u32,
        /// The file under `/proc/<pid>/`.
        file: &'static str,
    },
}

/// CPU time a process has used so far, user and system.
pub fn cpu_time(pid: u32) -> Result<Duration, ProcError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|source| ProcError::Read {
        pid,
        file: "stat",
        source,
    })?;
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let after_name =
        stat.rsplit_once(')').map(|(_, rest)| rest).ok_or(ProcError::Format { pid, file: "stat" })?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (Some(utime), Some(stime)) = (ticks(11), ticks(12)) else {
        return Err(ProcError::Format { pid, file: "stat" });
    };
    Ok(Duration::from_millis((utime + stime) * 1000 / TICKS_PER_SECOND))
}

/// A process's resident memory now and at its peak, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`.
    pub rss: u64,
    /// `VmHWM`: the peak since the start or the last [`reset_peak`].
    pub peak: u64,
}

/// [`Memory`] of a process.
pub fn memory(pid: u32) -> Result<Memory, ProcError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|source| ProcError::Read { pid, file: "status", source })?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    match (kib("VmRSS:"), kib("VmHWM:")) {
        (Some(rss), Some(peak)) => Ok(Memory { rss, peak }),
        _ => Err(ProcError::Format { pid, file: "status" }),
    }
}

/// Resets a process's `VmHWM` to its current RSS (`echo 5 > /proc/<pid>/clear_refs`), so the next
/// [`memory`] reports the peak of what ran since. Returns false when the kernel refused.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_while_this_process_computes() {
        let pid = std::process::id();
        let before = cpu_time(pid).expect("stat parses");
        // Compute until the counter moves (bounded: a process that computes for 10 s of wall
        // time gets some CPU on any machine).
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after <= before && started.elapsed() < Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = cpu_time(pid).expect("stat parses");
        }
        assert!(after > before, "CPU time did not grow: {before:?} then {after:?}");
    }

    #[test]
    fn memory_of_this_process() {
        let memory = memory(std::process::id()).expect("status parses");
        assert!(memory.rss > 0 && memory.peak >= memory.rss, "{memory:?}");
    }
}
