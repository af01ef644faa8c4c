//! Burst suppression: at most N entries a second with the same component and message; the rest are
//! counted, and one "suppressed N similar" entry follows when the second is over.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::entry::LogEntry;
use crate::field::Field;

const SECOND: u64 = 1_000_000_000;

struct Window {
    second: u64,
    kept: u32,
    suppressed: u64,
    /// The last suppressed entry, the model for the summary.
    last: Option<LogEntry>,
}

/// Per component and message, the current second's count.
pub(crate) struct Suppressor {
    per_second: u32,
    windows: HashMap<(Cow<'static, str>, Cow<'static, str>), Window>,
}

impl Suppressor {
    pub(crate) fn new(per_second: u32) -> Self {
        Suppressor { per_second, windows: HashMap::new() }
    }

    /// Keeps the entry (pushing it to `out`) or counts it; returns whether it was suppressed.
    pub(crate) fn admit(&mut self, entry: LogEntry, out: &mut Vec<LogEntry>) -> bool {
        let second = entry.time_unix_nanos / SECOND;
        let key = (entry.component.clone(), entry.message.clone());
        let window = self.windows.entry(key).or_insert(Window { second, kept: 0, suppressed: 0, last: None });
        if window.second != second {
            if let Some(summary) = summary(window) {
                out.push(summary);
            }
            *window = Window { second, kept: 0, suppressed: 0, last: None };
        }
        if window.kept < self.per_second {
            window.kept += 1;
            out.push(entry);
            false
        } else {
            window.suppressed += 1;
            window.last = Some(entry);
            true
        }
    }

    /// Summaries for every window whose second is over by `now_nanos`; forgets idle windows.
    pub(crate) fn sweep(&mut self, now_nanos: u64, out: &mut Vec<LogEntry>) {
        let now = now_nanos / SECOND;
        self.windows.retain(|_, window| {
            if window.second >= now {
                return true;
            }
            if let Some(summary) = summary(window) {
                out.push(summary);
            }
            false
        });
    }

    /// Summaries for every window, whatever the time (at flush and shutdown).
    pub(crate) fn drain(&mut self, out: &mut Vec<LogEntry>) {
        for (_, mut window) in self.windows.drain() {
            if let Some(summary) = summary(&mut window) {
                out.push(summary);
            }
        }
    }
}

fn summary(window: &mut Window) -> Option<LogEntry> {
    let mut entry = window.last.take()?;
    let suppressed = window.suppressed;
    entry.message = Cow::Owned(format!("suppressed {suppressed} similar: {}", entry.message));
    entry.fields = vec![Field::new("suppressed", suppressed)];
    entry.error = None;
    Some(entry)
}
