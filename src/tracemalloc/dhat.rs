//! Export of a snapshot in DHAT's JSON format (`dhatFileVersion` 2, mode `rust-heap`, the
//! format the `dhat` crate writes), so that DHAT's viewer (`dh_view.html`, shipped with
//! Valgrind and online) opens it: each traceback is a program point, with the blocks alive at
//! the snapshot as its bytes and blocks "at t-gmax" and "at t-end" (a snapshot has no history:
//! totals are what is alive, lifetimes unknown).

use super::snapshot::Snapshot;
use std::collections::HashMap;
use std::fmt::Write as _;

/// A JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Snapshot {
    /// The snapshot in DHAT's JSON format: save it as `dhat-heap.json` and open it in DHAT's
    /// viewer. One program point per traceback (take the snapshot after
    /// [`start(n)`](super::start) with `n` > 1 for the viewer's tree to mean something).
    ///
    /// ```
    /// let json = pyheap::tracemalloc::Snapshot::default().to_dhat_json();
    /// assert!(json.contains("\"dhatFileVersion\":2"));
    /// ```
    pub fn to_dhat_json(&self) -> String {
        let mut ftbl: Vec<String> = vec!["[root]".to_owned()];
        let mut fidx: HashMap<String, usize> = HashMap::new();
        let mut pps: HashMap<Vec<usize>, (usize, usize)> = HashMap::new();
        for t in self.traces() {
            // DHAT's frames go from the allocation outwards, as ours.
            let fs: Vec<usize> = t
                .traceback
                .frames()
                .iter()
                .map(|f| {
                    let s = format!(
                        "0x0: {} ({}:{}:0)",
                        if f.name().is_empty() { "???" } else { f.name() },
                        f.filename(),
                        f.lineno()
                    );
                    *fidx.entry(s.clone()).or_insert_with(|| {
                        ftbl.push(s);
                        ftbl.len() - 1
                    })
                })
                .collect();
            let e = pps.entry(fs).or_default();
            e.0 += t.size;
            e.1 += 1;
        }
        let mut pps: Vec<(Vec<usize>, (usize, usize))> = pps.into_iter().collect();
        pps.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut out = String::new();
        out.push_str("{\"dhatFileVersion\":2,\"mode\":\"rust-heap\",\"verb\":\"Allocated\",");
        out.push_str("\"bklt\":true,\"bkacc\":false,\"tu\":\"µs\",\"Mtu\":\"s\",\"tuth\":10,");
        out.push_str("\"cmd\":");
        json_str(&mut out, &std::env::args().collect::<Vec<_>>().join(" "));
        let _ = write!(
            out,
            ",\"pid\":{},\"tg\":0,\"te\":0,\"pps\":[",
            std::process::id()
        );
        for (i, (fs, (bytes, blocks))) in pps.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "\n{{\"tb\":{bytes},\"tbk\":{blocks},\"tl\":0,\"mb\":{bytes},\"mbk\":{blocks},\
                 \"gb\":{bytes},\"gbk\":{blocks},\"eb\":{bytes},\"ebk\":{blocks},\"fs\":{fs:?}}}"
            );
        }
        out.push_str("\n],\"ftbl\":[");
        for (i, f) in ftbl.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('\n');
            json_str(&mut out, f);
        }
        out.push_str("\n]}\n");
        out
    }

    /// Write [`Snapshot::to_dhat_json`] to `path` (DHAT's viewer opens `dhat-heap.json`).
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
    ///     let snapshot = tracemalloc::take_snapshot();
    ///     let path = std::env::temp_dir().join(format!("pyheap-dhat-{}.json", std::process::id()));
    ///     snapshot.dump_dhat(&path).unwrap();
    ///     assert!(std::fs::read_to_string(&path).unwrap().contains("\"dhatFileVersion\""));
    ///     std::fs::remove_file(&path).unwrap();
    ///     drop(blocks);
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn dump_dhat(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        std::fs::write(path, self.to_dhat_json())
    }
}
