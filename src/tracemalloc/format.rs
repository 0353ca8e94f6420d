//! `Display` of frames, tracebacks, traces and statistics, as Python's `tracemalloc` prints
//! them (`src/main.rs:42: size=1.2 MiB, count=300, average=4.1 KiB`).

use super::frame::{Frame, Traceback};
use super::snapshot::{Statistic, StatisticDiff, Trace};
use std::fmt;

/// Python's `_format_size`: `B` below 10 KiB, then three significant digits of KiB, MiB,
/// GiB or TiB (`512 B`, `10.0 KiB`, `1229 KiB`, `12.5 MiB`).
pub(crate) fn format_size(size: f64, sign: bool) -> String {
    let mut size = size;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"] {
        if size.abs() < 100.0 && unit != "B" {
            return if sign {
                format!("{size:+.1} {unit}")
            } else {
                format!("{size:.1} {unit}")
            };
        }
        if size.abs() < 10.0 * 1024.0 || unit == "TiB" {
            return if sign {
                format!("{size:+.0} {unit}")
            } else {
                format!("{size:.0} {unit}")
            };
        }
        size /= 1024.0;
    }
    unreachable!()
}

impl fmt::Display for Frame {
    /// `file:line`, Python's `str(frame)`; `<unknown>:0 (function)` for a frame without a
    /// line (no debug info).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.filename(), self.lineno())?;
        if self.lineno() == 0 && !self.name().is_empty() {
            write!(f, " ({})", self.name())?;
        }
        Ok(())
    }
}

/// A line of a source file (`linecache.getline`), trimmed; empty if unreadable.
fn source_line(file: &str, line: u32) -> String {
    if line == 0 {
        return String::new();
    }
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .nth(line as usize - 1)
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_default()
}

impl Traceback {
    /// The lines Python's `Traceback.format(limit, most_recent_first)` gives: for each frame
    /// `  File "src/main.rs", line 42, in myapp::main` and, when the file can be read, the
    /// source line indented below it. `limit`: only the `limit` most recent frames (a
    /// negative one: the oldest). Oldest first unless `most_recent_first`.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let b = Box::new([0u8; 64]);
    ///     let tb = tracemalloc::get_object_traceback(&b).unwrap();
    ///     // One `  File "...", line N, in f` line per frame (and the source line when readable).
    ///     let lines = tb.format(None, false);
    ///     assert!(lines[0].starts_with("  File "));
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn format(&self, limit: Option<isize>, most_recent_first: bool) -> Vec<String> {
        // Oldest first, as Python's sequence.
        let mut frames: Vec<&Frame> = self.frames().iter().rev().collect();
        if let Some(l) = limit {
            let n = frames.len();
            let k = l.unsigned_abs().min(n);
            frames = if l >= 0 {
                frames[n - k..].to_vec()
            } else {
                frames[..k].to_vec()
            };
        }
        if most_recent_first {
            frames.reverse();
        }
        let mut lines = Vec::new();
        for fr in frames {
            let mut l = format!("  File \"{}\", line {}", fr.filename(), fr.lineno());
            if !fr.name().is_empty() {
                l.push_str(", in ");
                l.push_str(fr.name());
            }
            lines.push(l);
            let src = source_line(fr.filename(), fr.lineno());
            if !src.is_empty() {
                lines.push(format!("    {src}"));
            }
        }
        lines
    }
}

impl fmt::Display for Traceback {
    /// The frames as [`Traceback::format`] gives them, oldest first ("most recent call
    /// last", as Python prints tracebacks), one per line. `{:#}` prints the most recent
    /// first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.format(None, f.alternate()).iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(l)?;
        }
        Ok(())
    }
}

/// The place of a statistic: its most recent frame (`file:line`), `<unknown>:0` for an empty
/// traceback.
struct Place<'a>(&'a Traceback);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.line() {
            Some(fr) => write!(f, "{fr}"),
            None => f.write_str("<unknown>:0"),
        }
    }
}

impl fmt::Display for Statistic {
    /// `src/main.rs:42: size=1.2 MiB, count=300, average=4.1 KiB` (Python's `str(stat)`; the
    /// place is the most recent frame).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: size={}, count={}",
            Place(&self.traceback),
            format_size(self.size as f64, false),
            self.count
        )?;
        if self.count > 0 {
            write!(
                f,
                ", average={}",
                format_size(self.size as f64 / self.count as f64, false)
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for StatisticDiff {
    /// `src/main.rs:42: size=1.2 MiB (+1.2 MiB), count=300 (+300), average=4.1 KiB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: size={} ({}), count={} ({:+})",
            Place(&self.traceback),
            format_size(self.size as f64, false),
            format_size(self.size_diff as f64, true),
            self.count,
            self.count_diff
        )?;
        if self.count > 0 {
            write!(
                f,
                ", average={}",
                format_size(self.size as f64 / self.count as f64, false)
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Trace {
    /// `src/main.rs:42: 4.1 KiB` (Python's `str(trace)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            Place(&self.traceback),
            format_size(self.size as f64, false)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::format_size;

    #[test]
    fn sizes_as_python_formats_them() {
        // Values checked against CPython 3.11's tracemalloc._format_size.
        assert_eq!(format_size(0.0, false), "0 B");
        assert_eq!(format_size(512.0, false), "512 B");
        assert_eq!(format_size(10239.0, false), "10239 B");
        assert_eq!(format_size(10240.0, false), "10.0 KiB");
        assert_eq!(format_size(1.2 * 1024.0 * 1024.0, false), "1229 KiB");
        assert_eq!(format_size(12.5 * 1024.0 * 1024.0, false), "12.5 MiB");
        assert_eq!(format_size(200.0 * 1024.0, false), "200 KiB");
        assert_eq!(format_size(-4096.0, true), "-4096 B");
        assert_eq!(format_size(20480.0, true), "+20.0 KiB");
    }
}
