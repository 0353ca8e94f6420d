//! `Filter`: which traces [`Snapshot::filter_traces`](super::Snapshot::filter_traces) keeps,
//! by file pattern and line, and by domain (Python's `Filter` and `DomainFilter` in one).

use super::snapshot::Trace;

/// A filter on traces (Python's `tracemalloc.Filter(inclusive, filename_pattern, lineno,
/// all_frames, domain)`, and `DomainFilter(inclusive, domain)` as [`Filter::domain_only`]).
///
/// ```
/// use pyheap::tracemalloc::Filter;
/// let keep_mine = Filter::include("src/*");                       // only what src/ allocated
/// let no_tests = Filter::exclude("tests/*").all_frames(true);     // nothing a test file is in
/// let line = Filter::include("src/cache.rs").lineno(42);
/// let no_big = Filter::domain_only(false, pyheap::tracemalloc::SYSTEM_DOMAIN);
/// # let _ = (keep_mine, no_tests, line, no_big);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Filter {
    /// Keep the traces that match (true) or those that do not (false).
    pub inclusive: bool,
    /// A shell pattern (`*`, `?`, `[seq]`, `[!seq]`) on a frame's file name; `None` for a
    /// filter on the domain only.
    pub filename_pattern: Option<String>,
    /// Only this line of the file.
    pub lineno: Option<u32>,
    /// Match any frame of the traceback, not only the most recent.
    pub all_frames: bool,
    /// Only traces of this domain.
    pub domain: Option<u16>,
}

impl Filter {
    /// Keep the traces allocated in files matching `pattern`.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     use tracemalloc::Filter;
    ///     let kept = tracemalloc::take_snapshot().filter_traces(&[Filter::include("*/no-such-file.rs")]);
    ///     assert!(kept.traces().is_empty());
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn include(pattern: &str) -> Filter {
        Filter::new(true, pattern)
    }

    /// Drop the traces allocated in files matching `pattern`.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     use tracemalloc::Filter;
    ///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
    ///     let snapshot = tracemalloc::take_snapshot();
    ///     // Excluding a file no trace comes from keeps them all.
    ///     let kept = snapshot.filter_traces(&[Filter::exclude("*/no-such-file.rs")]);
    ///     assert_eq!(kept.traces().len(), snapshot.traces().len());
    ///     drop(blocks);
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn exclude(pattern: &str) -> Filter {
        Filter::new(false, pattern)
    }

    /// Python's `Filter(inclusive, filename_pattern)`.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     use tracemalloc::Filter;
    ///     assert_eq!(Filter::new(true, "src/*"), Filter::include("src/*"));
    ///     assert!(!Filter::new(false, "src/*").inclusive);
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn new(inclusive: bool, pattern: &str) -> Filter {
        Filter {
            inclusive,
            filename_pattern: Some(pattern.to_owned()),
            lineno: None,
            all_frames: false,
            domain: None,
        }
    }

    /// Python's `DomainFilter(inclusive, domain)`: keep (or drop) the traces of `domain`.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     use tracemalloc::{Filter, SYSTEM_DOMAIN};
    ///     let big = vec![0u8; 100_000]; // more than 512 bytes: the system allocator's
    ///     let snapshot = tracemalloc::take_snapshot();
    ///     let system = snapshot.filter_traces(&[Filter::domain_only(true, SYSTEM_DOMAIN)]);
    ///     assert!(system.traces().iter().any(|t| t.size == 100_000));
    ///     assert!(system.traces().iter().all(|t| t.domain == SYSTEM_DOMAIN));
    ///     drop(big);
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn domain_only(inclusive: bool, domain: u16) -> Filter {
        Filter {
            inclusive,
            filename_pattern: None,
            lineno: None,
            all_frames: false,
            domain: Some(domain),
        }
    }

    /// Only this line.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     use tracemalloc::Filter;
    ///     let f = Filter::include("src/main.rs").lineno(42);
    ///     assert_eq!((f.filename_pattern.as_deref(), f.lineno), (Some("src/main.rs"), Some(42)));
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn lineno(mut self, lineno: u32) -> Filter {
        self.lineno = Some(lineno);
        self
    }

    /// Match any frame, not only the most recent.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     use tracemalloc::Filter;
    ///     assert!(Filter::include("*/cache.rs").all_frames(true).all_frames);
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn all_frames(mut self, all: bool) -> Filter {
        self.all_frames = all;
        self
    }

    /// Only traces of `domain`.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     use tracemalloc::{Filter, POOL_DOMAIN};
    ///     assert_eq!(Filter::include("src/*").domain(POOL_DOMAIN).domain, Some(POOL_DOMAIN));
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn domain(mut self, domain: u16) -> Filter {
        self.domain = Some(domain);
        self
    }

    fn matches_frame(&self, pattern: &str, file: &str, line: u32) -> bool {
        fnmatch(pattern.as_bytes(), file.as_bytes()) && self.lineno.is_none_or(|l| l == line)
    }

    /// Python's `_match`: true when the trace passes this filter (for an exclusive filter:
    /// when it does *not* match the pattern).
    pub(crate) fn matches(&self, t: &Trace) -> bool {
        let Some(pattern) = &self.filename_pattern else {
            let d = self.domain.is_some_and(|d| d == t.domain);
            return d == self.inclusive;
        };
        let frames = t.traceback.frames();
        let res = if self.all_frames {
            let any = frames
                .iter()
                .any(|f| self.matches_frame(pattern, f.filename(), f.lineno()));
            any == self.inclusive
        } else {
            let (file, line) = frames
                .first()
                .map_or(("<unknown>", 0), |f| (f.filename(), f.lineno()));
            self.matches_frame(pattern, file, line) == self.inclusive
        };
        match self.domain {
            None => res,
            Some(d) if self.inclusive => res && t.domain == d,
            Some(d) => res || t.domain != d,
        }
    }
}

/// Shell pattern matching (Python's `fnmatch.fnmatchcase`): `*` any run of characters,
/// `?` one character, `[abc]`, `[a-z]` and `[!abc]` a set.
pub(crate) fn fnmatch(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = set(&pat[p..], s[i]) {
                        if matched {
                            p += next;
                            i += 1;
                            continue;
                        }
                    } else if s[i] == b'[' {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
                c if c == s[i] => {
                    p += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Match `c` against the set at the start of `pat` (`[...]`): `(matched, length of the set)`,
/// or `None` if the `[` opens no set.
fn set(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut j = 1;
    let negate = pat.get(j) == Some(&b'!');
    if negate {
        j += 1;
    }
    let start = j;
    let mut matched = false;
    while j < pat.len() && (pat[j] != b']' || j == start) {
        if j + 2 < pat.len() && pat[j + 1] == b'-' && pat[j + 2] != b']' {
            matched |= pat[j] <= c && c <= pat[j + 2];
            j += 3;
        } else {
            matched |= pat[j] == c;
            j += 1;
        }
    }
    if j >= pat.len() {
        return None;
    }
    Some((matched != negate, j + 1))
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn shell_patterns() {
        let m = |p: &str, s: &str| fnmatch(p.as_bytes(), s.as_bytes());
        assert!(m("src/*", "src/main.rs"));
        assert!(m("*.rs", "src/a/b.rs"));
        assert!(!m("*.rs", "src/a/b.rc"));
        assert!(m("src/?ain.rs", "src/main.rs"));
        assert!(m("src/[lm]ain.rs", "src/main.rs"));
        assert!(!m("src/[!m]ain.rs", "src/main.rs"));
        assert!(m("src/[a-z]ain.rs", "src/main.rs"));
        assert!(m("*", ""));
        assert!(!m("a", ""));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("[", "["));
    }
}
