//! fail-rs action strings: `[p%][cnt*]task[(arg)]`, chained with `->`.
//!
//! Parsing follows the `fail` crate 0.5 step for step (the same splits, in the same order, with the same
//! number parsers), so that every string it accepts is accepted here and every string it rejects is
//! rejected: a failpoint configuration moves between the two unchanged.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What an action does when it fires (the `fail` crate's tasks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Nothing; the point goes on.
    Off,
    /// Return early from the point, with the argument if one was given.
    Return(Option<String>),
    /// Sleep this long (an `async` point waits on a timer instead).
    Sleep(Duration),
    /// Panic, with the message if one was given (only where the engine allows panics).
    Panic(Option<String>),
    /// Print a message to standard error.
    Print(Option<String>),
    /// Block until the point is configured again or removed.
    Pause,
    /// Yield the thread (or the task, at an `async` point).
    Yield,
    /// Busy-wait this long.
    Delay(Duration),
}

/// A fail-rs action string that does not parse; the message says what the `fail` crate would complain about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// `task(arg` without the closing parenthesis.
    #[error("parentheses do not match in {0:?}")]
    Parentheses(String),
    /// `p%` where `p` is not a number.
    #[error("failed to parse frequency {0:?}: expected a number such as 20 in `20%return`")]
    Frequency(String),
    /// `cnt*` where `cnt` is not a whole number.
    #[error("failed to parse count {0:?}: expected a whole number such as 3 in `3*return`")]
    Count(String),
    /// `sleep` or `delay` without `(milliseconds)`.
    #[error("{0} requires a timeout in milliseconds, as in `{0}(10)`")]
    MissingTimeout(&'static str),
    /// `sleep(x)` or `delay(x)` where `x` is not a whole number of milliseconds.
    #[error("failed to parse timeout {0:?}: expected whole milliseconds")]
    Timeout(String),
    /// A task that is none of off, return, sleep, panic, print, pause, yield, delay.
    #[error("unrecognized command {0:?}: expected off, return, sleep, panic, print, pause, yield or delay")]
    UnknownTask(String),
    /// A `FAILPOINTS` entry without `=`.
    #[error("invalid failpoint {0:?}: expected name=actions")]
    MissingEquals(String),
}

/// One action of a chain: a task, the chance it fires, and how many times it may.
#[derive(Debug)]
pub struct Action {
    task: Task,
    /// The chance in 0..=1 as written (`20%` is 0.2; values outside that range are kept as written, and
    /// behave as never or always).
    frequency: f32,
    /// Firings left; `u64::MAX` when unlimited.
    remaining: AtomicU64,
    limited: bool,
}

impl Action {
    /// The task this action performs.
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// The chance this action fires when asked, as written (`20%` gives 0.2).
    pub fn frequency(&self) -> f32 {
        self.frequency
    }

    /// Firings left, or `None` when unlimited.
    pub fn remaining(&self) -> Option<u64> {
        self.limited.then(|| self.remaining.load(Ordering::Relaxed))
    }

    /// Whether the action fires, given a uniform draw in `[0, 1)`; consumes one firing when limited.
    pub(crate) fn fires(&self, draw: f64) -> bool {
        if self.limited && self.remaining.load(Ordering::Acquire) == 0 {
            return false;
        }
        if self.frequency < 1.0 && draw >= f64::from(self.frequency) {
            return false;
        }
        if self.limited {
            return self
                .remaining
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(1))
                .is_ok();
        }
        true
    }
}

/// Splits at the first `pattern`, as the `fail` crate does.
fn partition(s: &str, pattern: char) -> (&str, Option<&str>) {
    match s.split_once(pattern) {
        Some((first, second)) => (first, Some(second)),
        None => (s, None),
    }
}

impl FromStr for Action {
    type Err = ActionError;

    fn from_str(s: &str) -> Result<Action, ActionError> {
        let mut remain = s.trim();
        let mut args = None;
        // Arguments first, in case they contain '%' or '*'.
        let (first, second) = partition(remain, '(');
        if let Some(second) = second {
            remain = first;
            let Some(inner) = second.strip_suffix(')') else {
                return Err(ActionError::Parentheses(s.to_owned()));
            };
            args = Some(inner);
        }

        let mut frequency = 1f32;
        let (first, second) = partition(remain, '%');
        if let Some(second) = second {
            remain = second;
            frequency = first.parse::<f32>().map_err(|_| ActionError::Frequency(first.to_owned()))? / 100.0;
        }

        let mut count = None;
        let (first, second) = partition(remain, '*');
        if let Some(second) = second {
            remain = second;
            count = Some(first.parse::<usize>().map_err(|_| ActionError::Count(first.to_owned()))?);
        }

        let timeout = |task: &'static str| -> Result<Duration, ActionError> {
            let millis = args.ok_or(ActionError::MissingTimeout(task))?;
            let millis = millis.parse::<u64>().map_err(|_| ActionError::Timeout(millis.to_owned()))?;
            Ok(Duration::from_millis(millis))
        };
        let task = match remain {
            "off" => Task::Off,
            "return" => Task::Return(args.map(str::to_owned)),
            "sleep" => Task::Sleep(timeout("sleep")?),
            "panic" => Task::Panic(args.map(str::to_owned)),
            "print" => Task::Print(args.map(str::to_owned)),
            "pause" => Task::Pause,
            "yield" => Task::Yield,
            "delay" => Task::Delay(timeout("delay")?),
            other => return Err(ActionError::UnknownTask(other.to_owned())),
        };
        Ok(Action {
            task,
            frequency,
            remaining: AtomicU64::new(count.map_or(u64::MAX, |count| count as u64)),
            limited: count.is_some(),
        })
    }
}

/// A chain of actions (`a->b->c`): on each evaluation the first action that fires decides.
#[derive(Debug)]
pub struct Actions {
    text: String,
    chain: Vec<Action>,
}

impl Actions {
    /// Parses a fail-rs action string such as `20%3*return(x)->sleep(10)->off`.
    ///
    /// # Errors
    ///
    /// [`ActionError`] exactly where the `fail` crate 0.5 rejects the string.
    pub fn parse(text: &str) -> Result<Self, ActionError> {
        let chain = text.split("->").map(Action::from_str).collect::<Result<_, _>>()?;
        Ok(Actions { text: text.to_owned(), chain })
    }

    /// The string this chain was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The actions, in order.
    pub fn actions(&self) -> &[Action] {
        &self.chain
    }

    /// The task of the first action that fires, drawing one uniform number per action asked.
    pub(crate) fn decide(&self, mut draw: impl FnMut() -> f64) -> Option<&Task> {
        self.chain.iter().find(|action| action.fires(draw())).map(Action::task)
    }
}

/// Parses a `FAILPOINTS` value: `name=actions;name=actions`, blanks around entries ignored.
///
/// # Errors
///
/// The first entry without `=`, or whose actions do not parse.
pub fn parse_failpoints(value: &str) -> Result<Vec<(String, Actions)>, (String, ActionError)> {
    let mut points = Vec::new();
    for entry in value.trim().split(';') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (name, actions) = partition(entry, '=');
        let Some(actions) = actions else {
            return Err((entry.to_owned(), ActionError::MissingEquals(entry.to_owned())));
        };
        let actions = Actions::parse(actions).map_err(|err| (name.to_owned(), err))?;
        points.push((name.to_owned(), actions));
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_decide_in_order_and_counts_run_out() {
        let actions = Actions::parse("2*return(a)->print->off").unwrap();
        let tasks: Vec<Task> = (0..4).map(|_| actions.decide(|| 0.5).cloned().unwrap()).collect();
        assert_eq!(
            tasks,
            [Task::Return(Some("a".into())), Task::Return(Some("a".into())), Task::Print(None), Task::Print(None)]
        );
        assert_eq!(actions.actions()[0].remaining(), Some(0));
        assert_eq!(actions.as_str(), "2*return(a)->print->off");
    }

    #[test]
    fn frequency_compares_against_the_draw() {
        let actions = Actions::parse("20%return").unwrap();
        assert!(actions.decide(|| 0.19).is_some());
        assert!(actions.decide(|| 0.21).is_none());
        assert!(Actions::parse("200%return").unwrap().decide(|| 0.99).is_some(), "above 100% always fires");
        assert!(Actions::parse("-5%return").unwrap().decide(|| 0.0).is_none(), "below 0% never fires");
    }
}
