//! The declarative reader: a [`Section`] wraps one TOML table, and each key
//! is read from it once, by the module of that section, with its parser and
//! its default in the same call (like maddy's `cfg.Duration(name, ...,
//! default, &dst)`). The keys a section was asked for are the keys it knows,
//! so a key that no reader asked for is reported as unknown, with the
//! closest known key as a suggestion: there is no second list of names to
//! keep in step.
//!
//! Problems are collected in a shared [`Report`] rather than returned, so
//! one pass finds them all.

use std::cell::RefCell;
use std::path::PathBuf;

use toml::{Table, Value};

use super::ConfigError;
use super::values::{Parsed, Problem, texts, type_name};

/// Every problem found in one file, in the order found.
pub(super) struct Report {
    file: PathBuf,
    errors: RefCell<Vec<ConfigError>>,
}

impl Report {
    pub(super) fn new(file: PathBuf) -> Self {
        Report { file, errors: RefCell::new(Vec::new()) }
    }

    /// `key` is the dotted path, empty for the file as a whole.
    pub(super) fn add(&self, key: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.errors.borrow_mut().push(ConfigError::new(&self.file, key, problem, fix));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.errors.borrow().is_empty()
    }

    pub(super) fn into_errors(self) -> Vec<ConfigError> {
        self.errors.into_inner()
    }
}

/// Whether a table or list of tables must be in the file.
#[derive(Clone, Copy)]
pub(super) enum Presence {
    Optional,
    /// Absent: this problem and fix.
    Required(&'static str, &'static str),
}

/// One table of the file, read key by key.
pub(super) struct Section<'t> {
    /// `None`: the table is absent, so every key takes its default.
    table: Option<&'t Table>,
    /// Dotted path of the table (`listener[2].tls`); empty at the top.
    path: String,
    report: &'t Report,
    /// Keys asked for, in the order asked: the keys this table knows.
    known: Vec<&'static str>,
}

impl<'t> Section<'t> {
    /// Reads the whole file with `read`, then reports the keys it did not ask for.
    pub(super) fn read_file<T>(table: &'t Table, report: &'t Report, read: impl FnOnce(&mut Section<'t>) -> T) -> T {
        Section::new(Some(table), String::new(), report).read_with(read)
    }

    fn new(table: Option<&'t Table>, path: String, report: &'t Report) -> Self {
        Section { table, path, report, known: Vec::new() }
    }

    fn read_with<T>(mut self, read: impl FnOnce(&mut Section<'t>) -> T) -> T {
        let value = read(&mut self);
        self.report_unknown_keys();
        value
    }

    /// The dotted path of one of this table's keys, as errors name it.
    pub(super) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// Records a problem that involves `key` beyond its own value (a
    /// combination of keys, a file it names).
    pub(super) fn report(&self, key: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.report.add(&self.key_path(key), problem, fix);
    }

    /// Whether the file sets `key`, valid or not: a key that is there but
    /// wrong has had its problem reported already.
    pub(super) fn is_set(&self, key: &str) -> bool {
        self.table.is_some_and(|table| table.contains_key(key))
    }

    /// Declares `key` as known here and returns its value, if set.
    fn declare(&mut self, key: &'static str) -> Option<&'t Value> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.table.and_then(|table| table.get(key))
    }

    fn record(&self, key: &str, problems: Vec<Problem>) {
        for problem in problems {
            let path = match &problem.below {
                Some(below) => format!("{}.{below}", self.key_path(key)),
                None => self.key_path(key),
            };
            self.report.add(&path, problem.problem, problem.fix);
        }
    }

    /// `key` read with `parse`; `None` when it is not set or not valid
    /// (then the problem is recorded).
    pub(super) fn get<T>(&mut self, key: &'static str, parse: impl FnOnce(&str, &Value) -> Parsed<T>) -> Option<T> {
        let value = self.declare(key)?;
        parse(key, value).map_err(|problems| self.record(key, problems)).ok()
    }

    /// `key` read with `parse`, or `default` when it is not set (or not
    /// valid, so that one pass can go on to find the next problem).
    pub(super) fn get_or<T>(
        &mut self,
        key: &'static str,
        default: T,
        parse: impl FnOnce(&str, &Value) -> Parsed<T>,
    ) -> T {
        self.get(key, parse).unwrap_or(default)
    }

    /// A list of strings, each parsed by `item`: every bad entry is
    /// reported and the good ones kept, so a list with one typo does not
    /// also look empty. `None` when not set or not a list.
    pub(super) fn get_each<T>(
        &mut self,
        key: &'static str,
        item: impl Fn(&str) -> Result<T, Problem>,
    ) -> Option<Vec<T>> {
        let texts = self.get(key, texts)?;
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for text in texts {
            match item(&text) {
                Ok(value) => good.push(value),
                Err(problem) => bad.push(problem),
            }
        }
        self.record(key, bad);
        Some(good)
    }

    /// A key without a default: when absent, `add` says what to write.
    pub(super) fn require<T>(
        &mut self,
        key: &'static str,
        add: &str,
        parse: impl FnOnce(&str, &Value) -> Parsed<T>,
    ) -> Option<T> {
        if self.declare(key).is_none() {
            self.report(key, "missing", add);
            return None;
        }
        self.get(key, parse)
    }

    /// A table whose keys all have defaults: read even when absent, so
    /// the defaults apply. `example` is how the table is written.
    pub(super) fn table<T>(
        &mut self,
        key: &'static str,
        example: &str,
        presence: Presence,
        read: impl FnOnce(&mut Section<'t>) -> T,
    ) -> T {
        let table = match self.declare(key) {
            Some(Value::Table(table)) => Some(table),
            Some(other) => {
                self.record(key, wrong_table(other, "a table", example));
                None
            }
            None => {
                if let Presence::Required(problem, fix) = presence {
                    self.report(key, problem, fix);
                }
                None
            }
        };
        Section::new(table, self.key_path(key), self.report).read_with(read)
    }

    /// A table that turns something on (`[listener.tls]`): `None` when absent.
    pub(super) fn table_if_set<T>(
        &mut self,
        key: &'static str,
        example: &str,
        read: impl FnOnce(&mut Section<'t>) -> T,
    ) -> Option<T> {
        match self.declare(key)? {
            Value::Table(table) => Some(Section::new(Some(table), self.key_path(key), self.report).read_with(read)),
            other => {
                self.record(key, wrong_table(other, "a table", example));
                None
            }
        }
    }

    /// A list of tables (`[[listener]]`), each read with `read`; errors
    /// name an entry by its place, counted from 1.
    pub(super) fn tables<T>(
        &mut self,
        key: &'static str,
        example: &str,
        presence: Presence,
        mut read: impl FnMut(&mut Section<'t>) -> T,
    ) -> Vec<T> {
        let items = match self.declare(key) {
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.record(key, wrong_table(other, "a list of tables", example));
                return Vec::new();
            }
            None => {
                if let Presence::Required(problem, fix) = presence {
                    self.report(key, problem, fix);
                }
                return Vec::new();
            }
        };
        let mut read_items = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("{}[{}]", self.key_path(key), index + 1);
            match item {
                Value::Table(table) => {
                    read_items.push(Section::new(Some(table), path, self.report).read_with(&mut read))
                }
                other => {
                    for problem in wrong_table(other, "a table", example) {
                        self.report.add(&path, problem.problem, problem.fix);
                    }
                }
            }
        }
        read_items
    }

    fn report_unknown_keys(&self) {
        let Some(table) = self.table else { return };
        for key in table.keys() {
            if self.known.contains(&key.as_str()) {
                continue;
            }
            let known = self.known.join(", ");
            let fix = match suggestion(key, &self.known) {
                Some(close) => format!("did you mean `{close}`? Known keys here: {known}"),
                None => format!("remove it; known keys here: {known}"),
            };
            self.report(key, "unknown key", fix);
        }
    }
}

fn wrong_table(value: &Value, wanted: &str, example: &str) -> Vec<Problem> {
    vec![Problem::new(format!("must be {wanted}, not {}", type_name(value)), format!("write it like {example}"))]
}

/// The closest known key, for "did you mean" hints.
fn suggestion<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min()
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: edits plus swaps of neighbours, the
/// commonest typos in hand-written keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut table = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in table.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in table[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[i - 1][j] + 1).min(table[i][j - 1] + 1).min(table[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[i - 2][j - 2] + 1);
            }
            table[i][j] = best;
        }
    }
    table[a.len()][b.len()]
}

#[cfg(test)]
mod tests;
