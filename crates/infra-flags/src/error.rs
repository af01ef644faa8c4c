//! Errors: what loading a flag set can report, and what the in-code API rejects.

use std::path::PathBuf;

use thiserror::Error;

/// A problem in one flag's definition.
///
/// Loading reports these and keeps the flag: the part that is wrong evaluates to false, as every Unleash
/// SDK does, so one bad constraint cannot take a whole flag set down. [`crate::FlagsBuilder::strict`]
/// turns them into a load failure instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// A constraint's operator is not one the specification defines; the constraint is false.
    #[error(
        "flag {flag:?}: unknown constraint operator {operator:?}; expected one of IN, NOT_IN, STR_CONTAINS, STR_STARTS_WITH, STR_ENDS_WITH, NUM_EQ, NUM_GT, NUM_GTE, NUM_LT, NUM_LTE, DATE_AFTER, DATE_BEFORE, SEMVER_EQ, SEMVER_GT, SEMVER_GTE, SEMVER_LT, SEMVER_LTE, REGEX, IN_CIDR"
    )]
    UnknownOperator {
        /// The flag.
        flag: String,
        /// The operator as written.
        operator: String,
    },
    /// A constraint's value does not parse for its operator; the constraint is false.
    #[error("flag {flag:?}: {operator} constraint value {value:?} is invalid: {reason}")]
    InvalidConstraintValue {
        /// The flag.
        flag: String,
        /// The operator.
        operator: String,
        /// The value as written.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A strategy name no SDK knows; the strategy never activates.
    #[error("flag {flag:?}: unknown strategy {strategy:?}; it never activates")]
    UnknownStrategy {
        /// The flag.
        flag: String,
        /// The strategy's name.
        strategy: String,
    },
    /// A strategy parameter is missing or out of range; the strategy never activates.
    #[error("flag {flag:?}: strategy {strategy} parameter {parameter:?} is {problem}")]
    InvalidParameter {
        /// The flag.
        flag: String,
        /// The strategy's name.
        strategy: String,
        /// The parameter.
        parameter: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A strategy refers to a segment the set does not define; the strategy never activates.
    #[error("flag {flag:?}: strategy refers to segment {segment}, which the flag set does not define")]
    UnknownSegment {
        /// The flag.
        flag: String,
        /// The segment id.
        segment: i64,
    },
    /// A dependency names a flag the set does not define; the flag is off.
    #[error("flag {flag:?}: depends on {parent:?}, which the flag set does not define")]
    UnknownParent {
        /// The flag.
        flag: String,
        /// The missing parent.
        parent: String,
    },
    /// Two flags share a name; the later one wins.
    #[error("flag {flag:?} is defined more than once; the last definition is used")]
    DuplicateFlag {
        /// The flag.
        flag: String,
    },
}

/// Why a flag set could not be loaded. The flags in use stay as they were.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The text is not a flag set in Unleash's `/client/features` format.
    #[error("flag set is not valid Unleash client-features JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A file could not be read.
    #[error("cannot read flag file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Strict loading found problems in the definitions.
    #[error("flag set has {} invalid definitions; the first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
    Invalid(Vec<DefinitionError>),
}

/// Why a change through the in-code API was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum FlagError {
    /// No flag has that name.
    #[error("no flag named {0:?}")]
    UnknownFlag(String),
    /// A flag of that name exists already.
    #[error("a flag named {0:?} exists already; change it with the set_* methods")]
    DuplicateFlag(String),
    /// A percentage outside 0..=100, or not a number.
    #[error("percentage {0} is out of range; expected a number from 0 to 100")]
    InvalidPercentage(f64),
    /// An empty flag name.
    #[error("a flag name must not be empty")]
    EmptyName,
    /// In strict mode, the change would leave the flag set with invalid definitions.
    #[error("the change leaves the flag set invalid: {0}")]
    Invalid(String),
}
