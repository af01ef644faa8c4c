//! The `log` crate's facade into the aggregator (feature `log`), so code already using
//! `log::info!` reports here.

use crate::aggregator::LogAggregator;
use crate::field::Field;
use crate::level::Level;

/// A `log::Log` that feeds a [`LogAggregator`]: the record's target becomes the component, its
/// module path, file and line become fields.
#[derive(Debug, Clone)]
pub struct LogBridge {
    logs: LogAggregator,
}

impl LogBridge {
    /// A bridge into `logs`.
    pub fn new(logs: LogAggregator) -> Self {
        LogBridge { logs }
    }

    /// Installs the bridge as the process's `log` logger, passing everything at `max` or more
    /// severe on to the aggregator's own directives.
    ///
    /// # Errors
    /// Another logger is installed already.
    pub fn install(logs: LogAggregator, max: log::LevelFilter) -> Result<(), log::SetLoggerError> {
        log::set_boxed_logger(Box::new(LogBridge::new(logs)))?;
        log::set_max_level(max);
        Ok(())
    }
}

fn level(level: log::Level) -> Level {
    match level {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warning,
        log::Level::Info => Level::Info,
        log::Level::Debug => Level::Debug,
        log::Level::Trace => Level::Trace,
    }
}

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.logs.enabled(level(metadata.level()), metadata.target())
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = level(record.level());
        if !self.logs.enabled(level, record.target()) {
            return;
        }
        // `log` hands over borrowed arguments: formatting them here, on the caller, is the only way.
        let message = match record.args().as_str() {
            Some(text) => text.to_owned(),
            None => record.args().to_string(),
        };
        let mut fields = Vec::with_capacity(2);
        if let Some(module) = record.module_path() {
            fields.push(Field::new("code.namespace", module.to_owned()));
        }
        if let (Some(file), Some(line)) = (record.file(), record.line()) {
            fields.push(Field::new("code.filepath", file.to_owned()));
            fields.push(Field::new("code.lineno", line));
        }
        self.logs.log(level, record.target().to_owned(), message, fields);
    }

    fn flush(&self) {
        self.logs.flush();
    }
}
