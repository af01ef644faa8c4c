//! An immutable, compiled flag set: what readers evaluate against, swapped whole on every change.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::constraint::{Constraint, IpNet};
use crate::context::{Context, ContextField};
use crate::definition::{
    ClientFeatures, DependencyDefinition, FeatureDefinition, Payload, StrategyDefinition, VariantDefinition,
};
use crate::error::DefinitionError;
use crate::hash::{GroupHash, ROLLOUT_SEED, VARIANT_SEED, normalized_hash};
use crate::stats::FlagStats;
use crate::text::{self, edge_words};

/// FxHash, for the per-flag user overrides and the file source's fingerprint: their keys come from the
/// flag set, not from requests, so a fast non-keyed hash is safe. Words are mixed eight bytes at a time,
/// the tail padded into one. (Flag names have their own hash, [`name_hash`].)
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const FX_K: u64 = 0x517c_c1b7_2722_0a95;

impl FxHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            // Assembled by shifts: a variable-length copy would be a call to memcpy.
            let word = tail.iter().enumerate().fold(0u64, |word, (i, byte)| word | u64::from(*byte) << (8 * i));
            self.mix(word);
        }
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.mix(u64::from(byte));
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.mix(word);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Flag name to position: open addressing over slots that hold each name's hash and, for names up to
/// 16 bytes, the name itself as two words, so that a lookup is one hash and a probe that touches nothing
/// but the slot: no pointer is followed and no `memcmp` called to confirm a match.
#[derive(Debug, Default)]
struct NameIndex {
    slots: Box<[NameSlot]>,
    mask: usize,
    /// The names over 16 bytes, one after another: a slot points into it, so confirming a long name
    /// reads its bytes here rather than following the flag to its name.
    long_names: Box<[u8]>,
}

/// One slot of a [`NameIndex`]; a hash of 0 marks an empty slot.
#[derive(Debug, Default, Clone, Copy)]
#[repr(align(32))]
struct NameSlot {
    /// `name_hash(name)`, never 0.
    hash: u64,
    /// The name's [`edge_words`]; for names over 16 bytes, (where its text starts in `long_names`, 0).
    words: (u64, u64),
    len: u32,
    position: u32,
}

/// The 128-bit product folded to 64 bits: one multiplication mixes both words into every output bit.
#[inline(always)]
fn fold_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    product as u64 ^ (product >> 64) as u64
}

/// A flag name's hash: names come from the flag set, not from requests, so an unkeyed hash is safe here.
/// Names up to 32 bytes (nearly all of them) take two or four loads and one or two multiplications,
/// with no loop over bytes.
#[inline(always)]
fn name_hash(name: &str) -> u64 {
    const K0: u64 = 0x243f_6a88_85a3_08d3;
    const K1: u64 = 0x1319_8a2e_0370_7344;
    const K2: u64 = 0xa409_3822_299f_31d0;
    const K3: u64 = 0x082e_fa98_ec4e_6c89;
    let bytes = name.as_bytes();
    let n = bytes.len();
    let seed = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    if n <= 16 {
        let (first, last) = edge_words(bytes);
        return fold_multiply(first ^ K0 ^ seed, last ^ K1) | 1;
    }
    if n <= 32 {
        let (first, second) = edge_words(&bytes[..16]);
        let (third, last) = edge_words(&bytes[n - 16..]);
        // Two independent products: their latencies overlap, where a chain of two would add up.
        return (fold_multiply(first ^ K0 ^ seed, second ^ K1) ^ fold_multiply(third ^ K2, last ^ K3)) | 1;
    }
    let mut hash = seed;
    let mut rest = bytes;
    while rest.len() > 16 {
        let (first, second) = edge_words(&rest[..16]);
        hash = fold_multiply(first ^ K0 ^ hash, second ^ K1);
        rest = &rest[16..];
    }
    let (first, last) = edge_words(rest);
    fold_multiply(first ^ K0 ^ hash, last ^ K1) | 1
}

impl NameIndex {
    fn build(names: &[Arc<str>]) -> Self {
        let size = (names.len() * 2).next_power_of_two().max(8);
        let mut slots = vec![NameSlot::default(); size].into_boxed_slice();
        let mut long_names = Vec::new();
        let mask = size - 1;
        for (position, name) in names.iter().enumerate() {
            let hash = name_hash(name);
            let mut at = hash as usize & mask;
            while slots[at].hash != 0 {
                at = (at + 1) & mask;
            }
            let words = if name.len() <= 16 {
                edge_words(name.as_bytes())
            } else {
                let start = long_names.len() as u64;
                long_names.extend_from_slice(name.as_bytes());
                (start, 0)
            };
            slots[at] = NameSlot { hash, words, len: name.len() as u32, position: position as u32 };
        }
        Self { slots, mask, long_names: long_names.into() }
    }

    // Forced inline into the evaluation path (see `published::SnapshotRead`).
    #[inline(always)]
    fn get(&self, name: &str) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let hash = name_hash(name);
        let short = name.len() <= 16;
        let words = if short { edge_words(name.as_bytes()) } else { (0, 0) };
        let mut at = hash as usize & self.mask;
        loop {
            let slot = &self.slots[at];
            if slot.hash == 0 {
                return None;
            }
            if slot.hash == hash && slot.len as usize == name.len() && self.same_name(slot, short, words, name) {
                return Some(slot.position as usize);
            }
            at = (at + 1) & self.mask;
        }
    }

    /// Whether the slot (of a name as long as `name`) holds `name`, whose edge words are `words` when it
    /// is `short`.
    #[inline(always)]
    fn same_name(&self, slot: &NameSlot, short: bool, words: (u64, u64), name: &str) -> bool {
        if short {
            return slot.words == words;
        }
        let start = slot.words.0 as usize;
        self.long_names.get(start..start + name.len()).is_some_and(|text| text::same(text, name.as_bytes()))
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The name Unleash uses when no variant applies.
pub(crate) const DISABLED_VARIANT: &str = "disabled";

/// What the in-code API adds to a flag: the seed's percentage rollouts and segment targeting, with the
/// answer for contexts they cannot decide.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CodeRule {
    /// On for users whose bucket (Unleash's, grouped by flag name, sticky on the user id) is within
    /// `percentage`; `default_value` without a user id.
    Rollout { percentage: f64, default_value: bool },
    /// On for users in any of `segments`; `default_value` when the context lists no segments.
    Segments { segments: Vec<String>, default_value: bool },
}

/// How a rollout or variant choice keeps a context in place.
#[derive(Debug, Clone)]
enum Stickiness {
    /// User id, then session id, then random.
    Default,
    Random,
    Field(ContextField),
}

impl Stickiness {
    fn parse(value: Option<&str>) -> Self {
        match value {
            None | Some("default") => Stickiness::Default,
            Some("random") => Stickiness::Random,
            Some(field) => Stickiness::Field(ContextField::parse(field)),
        }
    }
}

#[derive(Debug, Clone)]
enum StrategyKind {
    Always,
    Never,
    UserIds(Box<[Box<str>]>),
    /// Bucket of the sticky value within the group (`groupId`, or the flag's name when absent) at most
    /// `percentage`; false when the sticky field is missing.
    Rollout {
        percentage: u32,
        stickiness: Stickiness,
        group: GroupHash,
    },
    Random {
        percentage: u32,
    },
    RemoteAddress(Box<[IpNet]>),
    Hostname(Box<[Box<str>]>),
    Code(CodeRule),
}

impl StrategyKind {
    /// Whether the strategy activates a share of contexts by bucket or chance, rather than by rule.
    fn splits(&self) -> bool {
        match self {
            StrategyKind::Rollout { percentage, .. } | StrategyKind::Random { percentage } => *percentage < 100,
            StrategyKind::Code(CodeRule::Rollout { percentage, .. }) => *percentage < 100.0,
            _ => false,
        }
    }
}

/// What decided an evaluation, in OpenFeature's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag is on for everyone: no strategy to evaluate.
    Static,
    /// No strategy activated (or a dependency failed): the flag's default, off.
    Default,
    /// A rule (constraint, user list, override, address) activated the flag.
    TargetingMatch,
    /// A percentage rollout put the context in.
    Split,
    /// The flag is switched off.
    Disabled,
}

#[derive(Debug, Clone)]
struct Strategy {
    kind: StrategyKind,
    constraints: Box<[Constraint]>,
    /// Strategy variants: `Some` when the strategy defines a (possibly empty) list.
    variants: Option<VariantSet>,
}

#[derive(Debug, Clone)]
struct Variant {
    name: Arc<str>,
    weight: u32,
    payload: Option<Arc<Payload>>,
    overrides: Box<[VariantOverride]>,
    counter: Arc<AtomicU64>,
}

/// A context field and the values of it that pin a variant.
type VariantOverride = (ContextField, Box<[Box<str>]>);

#[derive(Debug, Clone)]
struct VariantSet {
    variants: Box<[Variant]>,
    total_weight: u32,
    stickiness: Stickiness,
    /// `groupId` (or the flag's name), hashed with the variant seed.
    group: GroupHash,
}

#[derive(Debug, Clone)]
struct Dependency {
    parent: Option<usize>,
    enabled: bool,
    variants: Box<[Box<str>]>,
}

/// A compiled flag.
#[derive(Debug)]
pub(crate) struct CompiledFeature {
    pub(crate) name: Arc<str>,
    enabled: bool,
    strategies: Box<[Strategy]>,
    variants: Option<VariantSet>,
    dependencies: Box<[Dependency]>,
    overrides: FxMap<Box<str>, bool>,
    pub(crate) impression_data: bool,
    pub(crate) stats: Arc<FlagStats>,
    disabled_counter: Arc<AtomicU64>,
    /// The answer for every context, when the rules do not look at the context (off, on without
    /// strategies, or a first strategy that always holds): on/off flags evaluate with one load. Kept
    /// apart from [`Shortcut`] and tested first: dispatched in one `match` with the shortcuts, constant
    /// answers went through a jump table whose load sat on the path of every evaluation.
    constant: Option<(bool, Reason)>,
    /// The flag's rules in a shorter form, when they have one of the other common shapes.
    shortcut: Shortcut,
}

/// The common shapes of a flag's rules, evaluated without walking its strategies. Each gives exactly
/// what [`Snapshot::evaluate_rules`] would.
#[derive(Debug)]
enum Shortcut {
    /// Any other shape (or a constant answer): the full evaluation.
    None,
    /// On exactly when every constraint holds: one `default` strategy with constraints.
    Constraints(Box<[Constraint]>),
    /// One rollout strategy without constraints; `reason` is what it answers when it holds.
    Rollout { percentage: u32, stickiness: Stickiness, group: GroupHash, reason: Reason },
}

/// The variant a context gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantResult {
    /// The variant's name; `disabled` when none applies.
    pub name: Arc<str>,
    /// Its payload, if any.
    pub payload: Option<Arc<Payload>>,
    /// Whether a variant applies (false for `disabled`).
    pub enabled: bool,
    /// Whether the flag itself is on for the context.
    pub feature_enabled: bool,
}

impl VariantResult {
    pub(crate) fn disabled(feature_enabled: bool) -> Self {
        thread_local! {
            static DISABLED: Arc<str> = Arc::from(DISABLED_VARIANT);
        }
        Self { name: DISABLED.with(Arc::clone), payload: None, enabled: false, feature_enabled }
    }
}

/// What an evaluation may need besides the context: the clock's time for date constraints and the host
/// name. Evaluations get it as a trait object (the flag set itself), so the many that need neither
/// build nothing for it.
pub(crate) trait Environment {
    /// The clock's time, in nanoseconds since the Unix epoch.
    fn now_unix_nanos(&self) -> i128;
    /// This machine's host name, for `applicationHostname` strategies.
    fn hostname(&self) -> &str;
}

/// A compiled flag set.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    index: NameIndex,
    pub(crate) features: Vec<CompiledFeature>,
}

/// Everything needed to compile: the Unleash definitions plus what the in-code API added.
#[derive(Debug, Clone, Default)]
pub(crate) struct Definitions {
    pub(crate) features: ClientFeatures,
    /// Flags created through the in-code API; their rules replace their Unleash strategies.
    pub(crate) code_flags: HashMap<String, crate::flags::FeatureFlag>,
    pub(crate) user_overrides: HashMap<String, HashMap<String, bool>>,
}

/// Why a flag is on when `kind` is the strategy that holds.
fn strategy_reason(kind: &StrategyKind) -> Reason {
    if kind.splits() { Reason::Split } else { Reason::TargetingMatch }
}

/// [`Shortcut::Rollout`]: on when the context's bucket is in.
#[inline(never)]
fn rollout_verdict(percentage: u32, stickiness: &Stickiness, group: &GroupHash, context: &Context) -> bool {
    rollout_holds(percentage, stickiness, group, context)
}

/// A flag's rules in their shortest form: a constant answer when they do not look at the context, else
/// a [`Shortcut`] when they have one of its shapes. Only flags without overrides or dependencies have
/// either.
fn shortcuts(
    enabled: bool,
    strategies: &[Strategy],
    dependencies: &[Dependency],
    overrides: &FxMap<Box<str>, bool>,
) -> (Option<(bool, Reason)>, Shortcut) {
    let constant = |enabled, reason| (Some((enabled, reason)), Shortcut::None);
    if !overrides.is_empty() || !dependencies.is_empty() {
        return (None, Shortcut::None);
    }
    if !enabled {
        return constant(false, Reason::Disabled);
    }
    let shortcut = match strategies {
        [] => return constant(true, Reason::Static),
        [first, ..] if matches!(first.kind, StrategyKind::Always) && first.constraints.is_empty() => {
            return constant(true, strategy_reason(&first.kind));
        }
        [only] => match &only.kind {
            StrategyKind::Always => Shortcut::Constraints(only.constraints.clone()),
            StrategyKind::Rollout { percentage, stickiness, group } if only.constraints.is_empty() => {
                Shortcut::Rollout {
                    percentage: *percentage,
                    stickiness: stickiness.clone(),
                    group: *group,
                    reason: strategy_reason(&only.kind),
                }
            }
            _ => Shortcut::None,
        },
        _ => Shortcut::None,
    };
    (None, shortcut)
}

fn random_percent() -> u32 {
    rand::random_range(1..=100)
}

impl Snapshot {
    /// Compiles `definitions`; problems are reported and the faulty parts evaluate to false.
    /// `stats_for` gives each flag its long-lived counters, so that reloading keeps analytics.
    pub(crate) fn compile(
        definitions: &Definitions,
        stats_for: &dyn Fn(&str) -> Arc<FlagStats>,
    ) -> (Self, Vec<DefinitionError>) {
        let mut problems = Vec::new();
        let features = &definitions.features;
        let segments: HashMap<i64, &[crate::definition::ConstraintDefinition]> =
            features.segments.iter().map(|s| (s.id, s.constraints.as_slice())).collect();

        // Index first, so dependencies resolve to positions; a later duplicate replaces an earlier one.
        let mut positions: HashMap<&str, usize> = HashMap::new();
        let mut order: Vec<&FeatureDefinition> = Vec::new();
        for feature in &features.features {
            match positions.get(feature.name.as_str()) {
                Some(&at) => {
                    problems.push(DefinitionError::DuplicateFlag { flag: feature.name.clone() });
                    order[at] = feature;
                }
                None => {
                    positions.insert(&feature.name, order.len());
                    order.push(feature);
                }
            }
        }

        let mut compiled = Vec::with_capacity(order.len());
        for feature in &order {
            let stats = stats_for(&feature.name);
            let name: Arc<str> = Arc::from(feature.name.as_str());
            let flag = feature.name.as_str();
            let mut strategies: Vec<Strategy> = feature
                .strategies
                .iter()
                .map(|strategy| compile_strategy(flag, strategy, &segments, &stats, &mut problems))
                .collect();
            if let Some(rule) = definitions.code_flags.get(flag).and_then(crate::flags::FeatureFlag::code_rule) {
                strategies =
                    vec![Strategy { kind: StrategyKind::Code(rule), constraints: Box::new([]), variants: None }];
            }
            let dependencies: Box<[Dependency]> = feature
                .dependencies
                .iter()
                .map(|dependency| compile_dependency(flag, dependency, &positions, &mut problems))
                .collect();
            let overrides: FxMap<Box<str>, bool> = definitions
                .user_overrides
                .get(flag)
                .map(|users| users.iter().map(|(user, value)| (Box::from(user.as_str()), *value)).collect())
                .unwrap_or_default();
            let (constant, shortcut) = shortcuts(feature.enabled, &strategies, &dependencies, &overrides);
            compiled.push(CompiledFeature {
                name: name.clone(),
                constant,
                shortcut,
                enabled: feature.enabled,
                strategies: strategies.into(),
                variants: compile_variants(&feature.variants, None, flag, &stats),
                dependencies,
                overrides,
                impression_data: feature.impression_data,
                disabled_counter: stats.variant_counter(DISABLED_VARIANT),
                stats,
            });
        }
        let names: Vec<Arc<str>> = compiled.iter().map(|f| f.name.clone()).collect();
        (Self { index: NameIndex::build(&names), features: compiled }, problems)
    }

    /// The position of the flag called `name`.
    #[inline(always)]
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name)
    }

    /// Whether the flag at `at` is on for `context`.
    #[inline]
    pub(crate) fn is_enabled_at(&self, at: usize, context: &Context, env: &dyn Environment) -> bool {
        // The reason is pure bookkeeping; inlined here, the compiler drops it.
        self.evaluate_at(at, context, env).0
    }

    /// Whether the flag at `at` is on for `context`, and what decided it.
    #[inline]
    pub(crate) fn evaluate_at(&self, at: usize, context: &Context, env: &dyn Environment) -> (bool, Reason) {
        let feature = &self.features[at];
        if let Some(answer) = feature.constant {
            return answer;
        }
        match &feature.shortcut {
            // Out of line, like the full evaluation, so that constant answers stay a few instructions.
            Shortcut::Constraints(constraints) => {
                if constraints_hold(constraints, context, env) {
                    (true, Reason::TargetingMatch)
                } else {
                    (false, Reason::Default)
                }
            }
            Shortcut::Rollout { percentage, stickiness, group, reason } => {
                if rollout_verdict(*percentage, stickiness, group, context) {
                    (true, *reason)
                } else {
                    (false, Reason::Default)
                }
            }
            Shortcut::None => self.evaluate_rules(at, context, env),
        }
    }

    /// [`Snapshot::evaluate_at`] for flags whose answer depends on the context: out of line, so that the
    /// constant answers stay a few instructions.
    #[inline(never)]
    fn evaluate_rules(&self, at: usize, context: &Context, env: &dyn Environment) -> (bool, Reason) {
        let feature = &self.features[at];
        if !feature.overrides.is_empty()
            && let Some(value) = context.user_id.as_deref().and_then(|user| feature.overrides.get(user))
        {
            return (*value, Reason::TargetingMatch);
        }
        if !feature.enabled {
            return (false, Reason::Disabled);
        }
        if !feature.dependencies.is_empty() && !self.dependencies_hold(feature, context, env) {
            return (false, Reason::Default);
        }
        if feature.strategies.is_empty() {
            return (true, Reason::Static);
        }
        match feature.strategies.iter().find(|strategy| strategy_holds(strategy, &feature.name, context, env)) {
            Some(strategy) => (true, strategy_reason(&strategy.kind)),
            None => (false, Reason::Default),
        }
    }

    #[inline(never)]
    fn dependencies_hold(&self, feature: &CompiledFeature, context: &Context, env: &dyn Environment) -> bool {
        feature.dependencies.iter().all(|dependency| {
            let Some(parent_at) = dependency.parent else { return false };
            let parent = &self.features[parent_at];
            // Only one level of dependencies is allowed, as in Unleash: a parent with parents fails.
            if !parent.dependencies.is_empty() {
                return false;
            }
            // A variant requirement binds only when the parent hands out a variant at all.
            if !dependency.variants.is_empty()
                && let Some(variant) = self.pick_variant(parent, context, env)
                && !dependency.variants.iter().any(|name| **name == *variant.name)
            {
                return false;
            }
            self.is_enabled_at(parent_at, context, env) == dependency.enabled
        })
    }

    /// The variant the feature hands out, assuming it is on: the first activating strategy's variants
    /// when it has some, else the flag's own.
    fn pick_variant<'s>(
        &'s self,
        feature: &'s CompiledFeature,
        context: &Context,
        env: &dyn Environment,
    ) -> Option<&'s Variant> {
        let from_strategy = feature.strategies.iter().find_map(|strategy| {
            let set = strategy.variants.as_ref()?;
            strategy_holds(strategy, &feature.name, context, env).then_some(set)
        });
        match from_strategy {
            Some(set) if !set.variants.is_empty() => select_variant(set, context),
            _ => feature.variants.as_ref().and_then(|set| select_variant(set, context)),
        }
    }

    /// The variant for `context` of the flag at `at`, counting it.
    pub(crate) fn variant_at(&self, at: usize, context: &Context, env: &dyn Environment) -> (bool, VariantResult) {
        let feature = &self.features[at];
        let enabled = self.is_enabled_at(at, context, env);
        let result = if enabled { self.pick_variant(feature, context, env) } else { None };
        match result {
            Some(variant) => {
                variant.counter.fetch_add(1, Ordering::Relaxed);
                (
                    enabled,
                    VariantResult {
                        name: variant.name.clone(),
                        payload: variant.payload.clone(),
                        enabled: true,
                        feature_enabled: true,
                    },
                )
            }
            None => {
                feature.disabled_counter.fetch_add(1, Ordering::Relaxed);
                (enabled, VariantResult::disabled(enabled))
            }
        }
    }
}

#[inline]
fn strategy_holds(strategy: &Strategy, flag: &str, context: &Context, env: &dyn Environment) -> bool {
    // The common strategies (`default`, rollouts) are decided here, inline; the others, and constraints,
    // are calls, which keeps this path's code (and its stack frame) small.
    let kind_holds = match &strategy.kind {
        StrategyKind::Always => true,
        StrategyKind::Rollout { percentage, stickiness, group } => {
            rollout_holds(*percentage, stickiness, group, context)
        }
        other => kind_holds(other, flag, context, env),
    };
    kind_holds && (strategy.constraints.is_empty() || constraints_hold(&strategy.constraints, context, env))
}

/// Whether every constraint holds.
#[inline(never)]
fn constraints_hold(constraints: &[Constraint], context: &Context, env: &dyn Environment) -> bool {
    constraints.iter().all(|constraint| constraint.holds(context, env))
}

/// Whether the context's bucket in `group` is within `percentage` (a random one without a sticky value).
#[inline]
fn rollout_holds(percentage: u32, stickiness: &Stickiness, group: &GroupHash, context: &Context) -> bool {
    let sticky = match stickiness {
        Stickiness::Default => context.user_id.as_deref().or(context.session_id.as_deref()),
        Stickiness::Random => None,
        Stickiness::Field(field) => match field.get(context) {
            Some(value) => Some(value),
            None => return false,
        },
    };
    match sticky {
        Some(value) => group.bucket(value, 100) <= percentage,
        None => random_percent() <= percentage,
    }
}

#[inline(never)]
fn kind_holds(kind: &StrategyKind, flag: &str, context: &Context, env: &dyn Environment) -> bool {
    match kind {
        StrategyKind::Always => true,
        StrategyKind::Never => false,
        StrategyKind::UserIds(ids) => context.user_id.as_deref().is_some_and(|user| ids.iter().any(|id| **id == *user)),
        StrategyKind::Rollout { percentage, stickiness, group } => {
            rollout_holds(*percentage, stickiness, group, context)
        }
        StrategyKind::Random { percentage } => random_percent() <= *percentage,
        StrategyKind::RemoteAddress(networks) => context
            .remote_address
            .as_deref()
            .and_then(|address| address.trim().parse().ok())
            .is_some_and(|ip| networks.iter().any(|network| network.contains(ip))),
        StrategyKind::Hostname(names) => names.iter().any(|name| name.eq_ignore_ascii_case(env.hostname())),
        StrategyKind::Code(CodeRule::Rollout { percentage, default_value }) => match context.user_id.as_deref() {
            Some(user) => f64::from(normalized_hash(flag, user, 100, ROLLOUT_SEED)) <= *percentage,
            None => *default_value,
        },
        StrategyKind::Code(CodeRule::Segments { segments, default_value }) => {
            if context.segments.is_empty() {
                *default_value
            } else {
                context.segments.iter().any(|segment| segments.contains(segment))
            }
        }
    }
}

fn select_variant<'s>(set: &'s VariantSet, context: &Context) -> Option<&'s Variant> {
    if let Some(pinned) = set.variants.iter().find(|variant| {
        variant.overrides.iter().any(|(field, values)| {
            field.get(context).is_some_and(|value| values.iter().any(|candidate| **candidate == *value))
        })
    }) {
        return Some(pinned);
    }
    if set.total_weight == 0 {
        return None;
    }
    let sticky = match &set.stickiness {
        Stickiness::Default => context.user_id.as_deref().or(context.session_id.as_deref()),
        Stickiness::Random => None,
        Stickiness::Field(field) => field.get(context),
    };
    let target = match sticky {
        Some(value) => set.group.bucket(value, set.total_weight),
        None => rand::random_range(1..=set.total_weight),
    };
    let mut cumulative = 0u32;
    set.variants.iter().find(|variant| {
        cumulative = cumulative.saturating_add(variant.weight);
        cumulative >= target
    })
}

fn parameter<'a>(strategy: &'a StrategyDefinition, name: &str) -> Option<&'a str> {
    strategy.parameters.get(name).map(String::as_str)
}

/// Reads a percentage parameter; out-of-range values are reported and clamped, unreadable ones disable
/// the strategy.
fn percentage(
    flag: &str,
    strategy: &StrategyDefinition,
    name: &str,
    problems: &mut Vec<DefinitionError>,
) -> Option<u32> {
    let mut report = |problem: String| {
        problems.push(DefinitionError::InvalidParameter {
            flag: flag.to_owned(),
            strategy: strategy.name.clone(),
            parameter: name.to_owned(),
            problem,
        });
    };
    match parameter(strategy, name).map(|text| (text, text.trim().parse::<u64>())) {
        None => {
            report("missing".into());
            None
        }
        Some((_, Ok(value))) if value <= 100 => Some(value as u32),
        Some((_, Ok(value))) => {
            report(format!("{value}, above 100; read as 100"));
            Some(100)
        }
        Some((text, Err(_))) => {
            report(format!("{text:?}, not a whole number from 0 to 100"));
            None
        }
    }
}

fn list(value: Option<&str>) -> impl Iterator<Item = &str> {
    value.unwrap_or("").split(',').map(str::trim).filter(|item| !item.is_empty())
}

fn compile_strategy(
    flag: &str,
    strategy: &StrategyDefinition,
    segments: &HashMap<i64, &[crate::definition::ConstraintDefinition]>,
    stats: &FlagStats,
    problems: &mut Vec<DefinitionError>,
) -> Strategy {
    let mut kind = match strategy.name.as_str() {
        "default" => StrategyKind::Always,
        "userWithId" => StrategyKind::UserIds(list(parameter(strategy, "userIds")).map(Box::from).collect()),
        "gradualRolloutUserId" | "gradualRolloutSessionId" => {
            let field =
                if strategy.name == "gradualRolloutUserId" { ContextField::UserId } else { ContextField::SessionId };
            let group_id = parameter(strategy, "groupId");
            if group_id.is_none() {
                problems.push(DefinitionError::InvalidParameter {
                    flag: flag.to_owned(),
                    strategy: strategy.name.clone(),
                    parameter: "groupId".into(),
                    problem: "missing".into(),
                });
            }
            match (percentage(flag, strategy, "percentage", problems), group_id) {
                (Some(percentage), Some(group_id)) => StrategyKind::Rollout {
                    percentage,
                    stickiness: Stickiness::Field(field),
                    group: GroupHash::new(group_id, ROLLOUT_SEED),
                },
                _ => StrategyKind::Never,
            }
        }
        "gradualRolloutRandom" => match percentage(flag, strategy, "percentage", problems) {
            Some(percentage) => StrategyKind::Random { percentage },
            None => StrategyKind::Never,
        },
        "flexibleRollout" => match percentage(flag, strategy, "rollout", problems) {
            Some(percentage) => StrategyKind::Rollout {
                percentage,
                stickiness: Stickiness::parse(parameter(strategy, "stickiness")),
                group: GroupHash::new(parameter(strategy, "groupId").unwrap_or(flag), ROLLOUT_SEED),
            },
            None => StrategyKind::Never,
        },
        "remoteAddress" => {
            let mut networks = Vec::new();
            for address in list(parameter(strategy, "IPs")) {
                match IpNet::parse(address) {
                    Ok(network) => networks.push(network),
                    Err(problem) => problems.push(DefinitionError::InvalidParameter {
                        flag: flag.to_owned(),
                        strategy: strategy.name.clone(),
                        parameter: "IPs".into(),
                        problem,
                    }),
                }
            }
            StrategyKind::RemoteAddress(networks.into())
        }
        "applicationHostname" => {
            StrategyKind::Hostname(list(parameter(strategy, "hostNames")).map(Box::from).collect())
        }
        other => {
            problems.push(DefinitionError::UnknownStrategy { flag: flag.to_owned(), strategy: other.to_owned() });
            StrategyKind::Never
        }
    };

    let mut constraints: Vec<Constraint> =
        strategy.constraints.iter().map(|constraint| Constraint::compile(flag, constraint, problems)).collect();
    for segment in &strategy.segments {
        match segments.get(segment) {
            Some(segment_constraints) => {
                constraints.extend(
                    segment_constraints.iter().map(|constraint| Constraint::compile(flag, constraint, problems)),
                );
            }
            None => {
                problems.push(DefinitionError::UnknownSegment { flag: flag.to_owned(), segment: *segment });
                kind = StrategyKind::Never;
            }
        }
    }
    let variants = strategy.variants.as_ref().map(|variants| {
        let group_id = parameter(strategy, "groupId").unwrap_or(flag);
        let stickiness = parameter(strategy, "stickiness").unwrap_or("default");
        compile_variants(variants, Some(stickiness), group_id, stats).unwrap_or_else(|| VariantSet {
            variants: Box::new([]),
            total_weight: 0,
            stickiness: Stickiness::Default,
            group: GroupHash::new(group_id, VARIANT_SEED),
        })
    });
    Strategy { kind, constraints: constraints.into(), variants }
}

/// Compiles a variant list; `stickiness` overrides the first variant's own (strategy variants take the
/// strategy's). `None` for an empty list.
fn compile_variants(
    variants: &[VariantDefinition],
    stickiness: Option<&str>,
    group_id: &str,
    stats: &FlagStats,
) -> Option<VariantSet> {
    if variants.is_empty() {
        return None;
    }
    let stickiness = Stickiness::parse(stickiness.or(variants[0].stickiness.as_deref()));
    let compiled: Box<[Variant]> = variants
        .iter()
        .map(|variant| Variant {
            name: Arc::from(variant.name.as_str()),
            weight: variant.weight,
            payload: variant.payload.clone().map(Arc::new),
            overrides: variant
                .overrides
                .iter()
                .map(|o| {
                    (ContextField::parse(&o.context_name), o.values.iter().map(|v| Box::from(v.as_str())).collect())
                })
                .collect(),
            counter: stats.variant_counter(&variant.name),
        })
        .collect();
    let total_weight = compiled.iter().fold(0u32, |sum, variant| sum.saturating_add(variant.weight));
    Some(VariantSet { variants: compiled, total_weight, stickiness, group: GroupHash::new(group_id, VARIANT_SEED) })
}

fn compile_dependency(
    flag: &str,
    dependency: &DependencyDefinition,
    positions: &HashMap<&str, usize>,
    problems: &mut Vec<DefinitionError>,
) -> Dependency {
    let parent = positions.get(dependency.feature.as_str()).copied();
    if parent.is_none() {
        problems.push(DefinitionError::UnknownParent { flag: flag.to_owned(), parent: dependency.feature.clone() });
    }
    Dependency {
        parent,
        enabled: dependency.enabled.unwrap_or(true),
        variants: dependency.variants.iter().map(|v| Box::from(v.as_str())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_every_length_hash_by_their_bytes() {
        let base: String = (0..40u8).map(|i| char::from(b'a' + i % 26)).collect();
        for len in 0..=base.len() {
            let name = &base[..len];
            // A copy elsewhere in memory: the hash reads the bytes, not the address.
            let copy = name.to_owned();
            assert_eq!(name_hash(name), name_hash(&copy));
            // Changing any one byte changes the comparison, wherever the byte is.
            for at in 0..len {
                let mut other = name.as_bytes().to_vec();
                other[at] = b'Z';
                let other = String::from_utf8(other).unwrap();
                if len <= 16 {
                    assert_ne!(edge_words(name.as_bytes()), edge_words(other.as_bytes()), "{name:?} vs {other:?}");
                }
                assert_ne!(name_hash(name), name_hash(&other), "{name:?} vs {other:?}");
            }
        }
    }

    #[test]
    fn the_index_finds_every_name_and_nothing_else() {
        // Short names (compared by their words in the index) and long ones (compared by their text), some
        // of them prefixes of others.
        let long = "a-rather-long-flag-name-for-the-checkout-service";
        let names: Vec<Arc<str>> = (0..500)
            .map(|i| format!("flag-{i}"))
            .chain((1..long.len()).map(|len| long[..len].to_owned()))
            .map(|name| Arc::from(name.as_str()))
            .collect();
        let definitions = Definitions {
            features: ClientFeatures {
                features: names
                    .iter()
                    .map(|name| serde_json::from_value(serde_json::json!({"name": &**name, "enabled": true})).unwrap())
                    .collect(),
                ..Default::default()
            },
            ..Default::default()
        };
        let (snapshot, problems) = Snapshot::compile(&definitions, &|_: &str| Arc::new(FlagStats::default()));
        assert!(problems.is_empty());
        for (at, name) in names.iter().enumerate() {
            assert_eq!(snapshot.position(name), Some(at));
        }
        let long_other = format!("{long}!");
        for missing in [
            "",
            "flag-",
            "flag-500",
            "flag-1 ",
            "Flag-1",
            "a-rather-long-flag-name-for-the-checkout-servicE",
            &long_other,
        ] {
            assert_eq!(snapshot.position(missing), None, "{missing:?}");
        }
    }
}
