//! The harness both Gc benchmark binaries share (`gc_bench`, `gc_bench_poolalloc`,
//! `sync_bench`): every heavy (workload, contender) pair first runs once in a child process
//! (peak RSS, drop check, crash and deadlock detection: a contender that overflows its stack or
//! hangs is reported, not timed), then criterion times the contenders of each workload side by
//! side, rotating their order. A suite describes its workloads and contenders with a
//! [`Suite`]; the child and criterion runs are its own functions.

use criterion::Criterion;
use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small deterministic generator (splitmix64), the same for every contender.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

/// `a,b,c` from the environment variable `var` (a child run's pyheap thresholds, for policy
/// experiments only: the suites never set it). Panics with the variable's name on anything
/// but three numbers.
pub fn thresholds_from_env(var: &str) -> Option<(usize, usize, usize)> {
    let t = std::env::var(var).ok()?;
    let v: Vec<usize> = t
        .split(',')
        .map(|x| x.trim().parse().ok())
        .collect::<Option<_>>()
        .filter(|v: &Vec<usize>| v.len() == 3)
        .unwrap_or_else(|| panic!("{var}={t}: expected three numbers a,b,c"));
    Some((v[0], v[1], v[2]))
}

/// A field of `/proc/self/status`, in KiB (0 if unreadable).
pub fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn criterion_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CRITERION_HOME") {
        return d.into();
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    target.join("criterion")
}

/// User plus system CPU ticks of process `pid` so far (0 if unreadable).
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// One benchmark binary's workloads and contenders.
pub struct Suite {
    /// Criterion groups are `<prefix>_<workload>`; the environment variables
    /// `<PREFIX>_BENCH_CHILD` and `<PREFIX>_BENCH_CHILDREN`; the table `<prefix>_children.tsv`.
    pub prefix: &'static str,
    /// Workloads timed by criterion only.
    pub micro: &'static [&'static str],
    /// Workloads that also run once per contender in a child process first.
    pub heavy: &'static [&'static str],
    pub contenders: &'static [&'static str],
    /// Whether a contender runs a workload at all.
    pub applicable: fn(&str, &str) -> bool,
    /// Run workload `w` once for contender `c` in this (child) process; print the result line.
    pub child: fn(&str, &str),
    /// Register contender `c` on workload `w` with criterion.
    pub bench: fn(&mut Criterion, &str, &str),
}

impl Suite {
    fn var(&self, what: &str) -> String {
        format!("{}_BENCH_{what}", self.prefix.to_uppercase())
    }

    fn table(&self) -> String {
        format!("{}_children.tsv", self.prefix)
    }

    /// Run every heavy (workload, contender) pair in a child; write the table; return the pairs
    /// that failed (criterion skips them).
    fn run_children(&self, filter: &dyn Fn(&str) -> bool) -> HashSet<(String, String)> {
        let exe = std::env::current_exe().expect("current_exe");
        let mut failed = HashSet::new();
        let mut rows = vec![
            "workload\tcontender\tstatus\tns_per_object\tpeak_rss_kib\tbase_rss_kib\tlive_after"
                .to_string(),
        ];
        for &w in self.heavy {
            if !filter(w) {
                continue;
            }
            for &c in self.contenders {
                if !(self.applicable)(c, w) {
                    continue;
                }
                let mut child = Command::new(&exe)
                    .env(self.var("CHILD"), format!("{w}/{c}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn child");
                let deadline = Instant::now() + Duration::from_secs(120);
                // A child that uses no CPU for 10 s is deadlocked (dumpster's mix does that).
                let mut cpu = (cpu_ticks(child.id()), Instant::now());
                let mut hung = false;
                let status = loop {
                    if let Some(s) = child.try_wait().expect("wait") {
                        break Some(s);
                    }
                    let now = Instant::now();
                    if now.duration_since(cpu.1) > Duration::from_secs(10) {
                        let t = cpu_ticks(child.id());
                        hung = t == cpu.0;
                        cpu = (t, now);
                    }
                    if now > deadline || hung {
                        let _ = child.kill();
                        let _ = child.wait();
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                let mut out = String::new();
                let mut err = String::new();
                let _ = child.stdout.take().unwrap().read_to_string(&mut out);
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                let result = out.lines().find(|l| l.starts_with("RESULT\t"));
                let (status, fields) = match (status, result) {
                    (None, _) if hung => {
                        ("deadlock (no CPU time for 10 s, killed)".to_string(), None)
                    }
                    (None, _) => ("timeout (>120 s)".to_string(), None),
                    (Some(s), Some(r)) if s.success() => {
                        let f: Vec<&str> = r.split('\t').skip(1).collect();
                        let live: isize = f[3].parse().unwrap_or(-1);
                        let st = if live == 0 {
                            "ok".to_string()
                        } else {
                            format!("{live} nodes not dropped")
                        };
                        (
                            st,
                            Some(f.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                        )
                    }
                    (Some(_), _)
                        if err.contains("overflowed its stack")
                            || err.contains("stack overflow") =>
                    {
                        ("stack overflow".to_string(), None)
                    }
                    (Some(s), _) => {
                        use std::os::unix::process::ExitStatusExt;
                        let last = err.lines().last().unwrap_or("").to_string();
                        match s.signal() {
                            Some(sig) => (format!("crash (signal {sig}) {last}"), None),
                            None => (format!("failed (exit {:?}) {last}", s.code()), None),
                        }
                    }
                };
                if fields.is_none() {
                    failed.insert((w.to_string(), c.to_string()));
                }
                for l in err.lines().filter(|l| l.starts_with("child ")) {
                    eprintln!("  {l}");
                }
                let f = fields.unwrap_or_else(|| vec![String::new(); 4]);
                eprintln!("{} child {w}/{c}: {status} {f:?}", self.prefix);
                rows.push(format!(
                    "{w}\t{c}\t{status}\t{}\t{}\t{}\t{}",
                    f[0], f[1], f[2], f[3]
                ));
            }
        }
        let dir = criterion_dir();
        let _ = std::fs::create_dir_all(&dir);
        std::fs::write(dir.join(self.table()), rows.join("\n") + "\n")
            .expect("write the children table");
        failed
    }

    /// The previous run's failures (with `<PREFIX>_BENCH_CHILDREN=skip`).
    fn previous_failures(&self) -> HashSet<(String, String)> {
        let s = std::fs::read_to_string(criterion_dir().join(self.table())).unwrap_or_default();
        s.lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() >= 4 && f[3].is_empty()).then(|| (f[0].to_string(), f[1].to_string()))
            })
            .collect()
    }

    /// The bench binary's `main`.
    pub fn main(&self) {
        if let Ok(spec) = std::env::var(self.var("CHILD")) {
            let (w, c) = spec
                .split_once('/')
                .expect("<PREFIX>_BENCH_CHILD=<workload>/<contender>");
            (self.child)(c, w);
            return;
        }
        let mut crit = Criterion::default()
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(1))
            .configure_from_args();
        // A workload runs if a piece of the criterion filter (the first free argument, split
        // at `|`, anchors dropped) is a substring of `<prefix>_<workload>/` or contains it, or
        // if there is no filter.
        let filter_arg: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        let wanted = |w: &str| {
            filter_arg.as_deref().is_none_or(|f| {
                let id = format!("{}_{w}/", self.prefix);
                f.split('|').any(|piece| {
                    let piece = piece.trim_start_matches('^').trim_end_matches('$');
                    id.contains(piece) || piece.contains(&id)
                })
            })
        };
        let failed = if std::env::var(self.var("CHILDREN")).as_deref() == Ok("skip") {
            self.previous_failures()
        } else {
            self.run_children(&wanted)
        };
        // Rotate the contender order per workload so that no contender always runs first.
        for (i, w) in self.micro.iter().chain(self.heavy.iter()).enumerate() {
            if !wanted(w) {
                continue;
            }
            let n = self.contenders.len();
            for k in 0..n {
                let c = self.contenders[(i + k) % n];
                if !(self.applicable)(c, w) || failed.contains(&(w.to_string(), c.to_string())) {
                    continue;
                }
                (self.bench)(&mut crit, c, w);
            }
        }
        crit.final_summary();
    }
}
