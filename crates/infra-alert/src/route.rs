//! The routing tree, with Alertmanager's semantics: matchers, `continue`, settings inherited down the
//! tree, `group_by`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use crate::error::ConfigError;
use crate::labels::Labels;
use crate::matcher::{Matcher, all_match};

/// Alertmanager's default wait before a new group's first notification.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// Alertmanager's default wait before notifying about changes to a group.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Alertmanager's default wait before repeating an unchanged notification.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 60 * 60);

/// How alerts reaching a route are grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// By the values of these labels (none: one group for the route).
    Labels(Vec<String>),
    /// By every label (`group_by: ['...']`): each alert its own group.
    All,
}

/// A route as written: every setting optional, inherited from the parent when absent.
#[derive(Debug, Clone, Default)]
#[must_use = "a route does nothing until it is part of a tree"]
pub struct Route {
    receiver: Option<String>,
    group_by: Option<GroupBy>,
    matchers: Vec<Matcher>,
    continue_matching: bool,
    group_wait: Option<Duration>,
    group_interval: Option<Duration>,
    repeat_interval: Option<Duration>,
    routes: Vec<Route>,
}

impl Route {
    /// A route sending to `receiver`.
    pub fn to(receiver: impl Into<String>) -> Self {
        Route { receiver: Some(receiver.into()), ..Route::default() }
    }

    /// A route that inherits its receiver from its parent.
    pub fn inherit() -> Self {
        Route::default()
    }

    /// Adds a matcher: the route only takes alerts that satisfy all of its matchers.
    pub fn matcher(mut self, matcher: Matcher) -> Self {
        self.matchers.push(matcher);
        self
    }

    /// Groups by these labels.
    pub fn group_by<I: IntoIterator<Item = S>, S: Into<String>>(mut self, labels: I) -> Self {
        self.group_by = Some(GroupBy::Labels(labels.into_iter().map(Into::into).collect()));
        self
    }

    /// Groups by every label (`group_by: ['...']`).
    pub fn group_by_all(mut self) -> Self {
        self.group_by = Some(GroupBy::All);
        self
    }

    /// After matching here, goes on to the next sibling routes too (Alertmanager's `continue`).
    pub fn continue_matching(mut self, go_on: bool) -> Self {
        self.continue_matching = go_on;
        self
    }

    /// The wait before a new group's first notification.
    pub fn group_wait(mut self, wait: Duration) -> Self {
        self.group_wait = Some(wait);
        self
    }

    /// The wait before notifying about a group's changes.
    pub fn group_interval(mut self, interval: Duration) -> Self {
        self.group_interval = Some(interval);
        self
    }

    /// The wait before repeating an unchanged notification.
    pub fn repeat_interval(mut self, interval: Duration) -> Self {
        self.repeat_interval = Some(interval);
        self
    }

    /// Adds a child route, tried in order.
    pub fn route(mut self, child: Route) -> Self {
        self.routes.push(child);
        self
    }
}

/// A route with everything inherited filled in, as the tree evaluates it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedRoute {
    /// The route's receiver.
    pub receiver: String,
    /// How its alerts are grouped.
    pub group_by: GroupBy,
    /// Its matchers (its own; its ancestors' held already when it is reached).
    pub matchers: Vec<Matcher>,
    /// Whether matching goes on to later siblings.
    pub continue_matching: bool,
    /// Group timers.
    pub group_wait: Duration,
    /// Group timers.
    pub group_interval: Duration,
    /// Group timers.
    pub repeat_interval: Duration,
    /// Alertmanager's route key: the ancestors' matchers and its own, as `{}/{a="b"}`; group keys
    /// start with it.
    pub key: String,
    /// Its position in the tree (depth first), which tells apart siblings with the same matchers.
    pub index: usize,
    children: Vec<usize>,
}

impl ResolvedRoute {
    /// The labels an alert is grouped by on this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => labels.project(names.iter().map(String::as_str)),
        }
    }

    /// Alertmanager's group key for `labels` on this route: `<route key>:<group labels>`.
    pub fn group_key(&self, labels: &Labels) -> String {
        format!("{}:{}", self.key, self.group_labels(labels))
    }
}

/// A checked routing tree.
#[derive(Debug, Clone)]
pub struct RouteTree {
    nodes: Vec<ResolvedRoute>,
    source: Route,
}

impl RouteTree {
    /// Checks and resolves a tree rooted at `root`. Receivers named by routes must be among `receivers`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the root has no receiver or has matchers, a route names an unknown receiver, or
    /// a timer is zero.
    pub fn new(root: Route, receivers: &[&str]) -> Result<Self, ConfigError> {
        if root.receiver.is_none() {
            return Err(ConfigError::Route("the root route needs a receiver".into()));
        }
        if !root.matchers.is_empty() {
            return Err(ConfigError::Route("the root route must not have matchers: it takes every alert".into()));
        }
        let known: BTreeSet<&str> = receivers.iter().copied().collect();
        let mut nodes = Vec::new();
        let defaults = ResolvedRoute {
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            matchers: Vec::new(),
            continue_matching: false,
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            key: String::new(),
            index: 0,
            children: Vec::new(),
        };
        resolve(&root, &defaults, None, &known, &mut nodes)?;
        Ok(RouteTree { nodes, source: root })
    }

    /// The routes an alert with `labels` reaches, in order (Alertmanager's `Match`): depth first, a
    /// matching child stops its later siblings unless it has `continue`, and a route none of whose
    /// children match is itself the match.
    pub fn matches(&self, labels: &Labels) -> Vec<&ResolvedRoute> {
        let mut found = Vec::new();
        self.collect(0, labels, &mut found);
        found.into_iter().map(|index| &self.nodes[index]).collect()
    }

    /// The receivers an alert reaches, in order (what `amtool config routes test` prints).
    pub fn receivers(&self, labels: &Labels) -> Vec<&str> {
        self.matches(labels).into_iter().map(|route| route.receiver.as_str()).collect()
    }

    fn collect(&self, index: usize, labels: &Labels, found: &mut Vec<usize>) -> bool {
        let node = &self.nodes[index];
        if !all_match(&node.matchers, labels) {
            return false;
        }
        let before = found.len();
        for &child in &node.children {
            let matched = self.collect(child, labels, found);
            if matched && !self.nodes[child].continue_matching {
                break;
            }
        }
        if found.len() == before {
            found.push(index);
        }
        true
    }

    /// Every receiver some route names.
    pub fn receiver_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.nodes.iter().map(|node| node.receiver.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The route at `index` (see [`ResolvedRoute::index`]).
    pub fn route(&self, index: usize) -> Option<&ResolvedRoute> {
        self.nodes.get(index)
    }

    /// The root route, resolved.
    pub fn root(&self) -> &ResolvedRoute {
        &self.nodes[0]
    }

    /// The tree as Alertmanager configuration (`route:` and `receivers:`), for tools that read it.
    pub fn to_alertmanager_yaml(&self, receivers: &[&str]) -> String {
        let mut yaml = String::from("route:\n");
        write_route(&self.source, 1, &mut yaml);
        yaml.push_str("receivers:\n");
        for receiver in receivers {
            let _ = writeln!(yaml, "  - name: {}", quote(receiver));
        }
        yaml
    }
}

fn resolve(
    route: &Route,
    parent: &ResolvedRoute,
    parent_index: Option<usize>,
    known: &BTreeSet<&str>,
    nodes: &mut Vec<ResolvedRoute>,
) -> Result<usize, ConfigError> {
    let receiver = route.receiver.clone().unwrap_or_else(|| parent.receiver.clone());
    if !known.contains(receiver.as_str()) {
        return Err(ConfigError::UnknownReceiver(receiver));
    }
    for (setting, value) in [
        ("group_wait", route.group_wait),
        ("group_interval", route.group_interval),
        ("repeat_interval", route.repeat_interval),
    ] {
        if value == Some(Duration::ZERO) && setting != "group_wait" {
            return Err(ConfigError::Zero(setting));
        }
    }
    let mut matchers = route.matchers.clone();
    matchers.sort_by(|a, b| (a.name(), a.value()).cmp(&(b.name(), b.value())));
    let own = format!("{{{}}}", matchers.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
    let key = match parent_index {
        None => own,
        Some(_) => format!("{}/{own}", parent.key),
    };
    let resolved = ResolvedRoute {
        receiver,
        group_by: route.group_by.clone().unwrap_or_else(|| parent.group_by.clone()),
        matchers,
        continue_matching: route.continue_matching,
        group_wait: route.group_wait.unwrap_or(parent.group_wait),
        group_interval: route.group_interval.unwrap_or(parent.group_interval),
        repeat_interval: route.repeat_interval.unwrap_or(parent.repeat_interval),
        key,
        index: nodes.len(),
        children: Vec::new(),
    };
    let index = nodes.len();
    nodes.push(resolved.clone());
    for child in &route.routes {
        let child_index = resolve(child, &resolved, Some(index), known, nodes)?;
        nodes[index].children.push(child_index);
    }
    Ok(index)
}

/// A YAML single-quoted string.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn duration(value: Duration) -> String {
    format!("{}ms", value.as_millis())
}

fn write_route(route: &Route, depth: usize, yaml: &mut String) {
    let pad = "  ".repeat(depth);
    if let Some(receiver) = &route.receiver {
        let _ = writeln!(yaml, "{pad}receiver: {}", quote(receiver));
    }
    match &route.group_by {
        Some(GroupBy::All) => {
            let _ = writeln!(yaml, "{pad}group_by: ['...']");
        }
        Some(GroupBy::Labels(labels)) => {
            let list: Vec<String> = labels.iter().map(|label| quote(label)).collect();
            let _ = writeln!(yaml, "{pad}group_by: [{}]", list.join(", "));
        }
        None => {}
    }
    if !route.matchers.is_empty() {
        let list: Vec<String> = route.matchers.iter().map(|matcher| quote(&matcher.to_string())).collect();
        let _ = writeln!(yaml, "{pad}matchers: [{}]", list.join(", "));
    }
    if route.continue_matching {
        let _ = writeln!(yaml, "{pad}continue: true");
    }
    for (name, value) in [
        ("group_wait", route.group_wait),
        ("group_interval", route.group_interval),
        ("repeat_interval", route.repeat_interval),
    ] {
        if let Some(value) = value {
            let _ = writeln!(yaml, "{pad}{name}: {}", duration(value));
        }
    }
    if !route.routes.is_empty() {
        let _ = writeln!(yaml, "{pad}routes:");
        for child in &route.routes {
            let item_pad = "  ".repeat(depth + 1);
            let mut child_yaml = String::new();
            write_route(child, depth + 2, &mut child_yaml);
            if child_yaml.is_empty() {
                let _ = writeln!(yaml, "{item_pad}- {{}}");
                continue;
            }
            // The first line of a list item carries the dash.
            let body = child_yaml.replacen(&"  ".repeat(depth + 2), &format!("{item_pad}- "), 1);
            yaml.push_str(&body);
        }
    }
}
