//! The one SQL interface both record backends implement: SQLite (embedded
//! default) and PostgreSQL (shared by several agents).
//!
//! The store's queries are written once, in the SQL both engines share: `?N`
//! parameters (rewritten to `$N` for PostgreSQL), `RETURNING id`, `ON CONFLICT`,
//! `instr` (a PostgreSQL function created by its schema), and two tokens for the
//! database server's clock, so that leases never depend on agents' clocks:
//! `NOW_UTC` and `NOW_PLUS_SECS(?N)`, both ISO-8601 UTC text with milliseconds
//! (`2026-12-06T05:40:01.123Z`), which compares correctly as text.
//! Values travel as [`Value`]; PostgreSQL columns are BIGINT / DOUBLE PRECISION /
//! TEXT so that the same values fit both.

use std::collections::HashMap;
use std::error::Error as StdError;

use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::StoreError;

/// One SQL value, as both backends bind and return it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(v as i64)
            }
        }
    )*};
}
from_int!(i64, i32, u32, u16, usize);

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v.min(i64::MAX as u64) as i64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(v as i64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Real(v as f64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
impl<T: Clone + Into<Value>> From<&Option<T>> for Value {
    fn from(v: &Option<T>) -> Self {
        v.clone().map_or(Value::Null, Into::into)
    }
}

/// `vals![a, b]`: the parameters of one statement.
macro_rules! vals {
    ($($v:expr),* $(,)?) => { &[$($crate::store::db::Value::from($v)),*][..] };
}
pub(crate) use vals;

/// Reads a column of a [`Row`] as a Rust type.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            Value::Real(r) => Some(*r as i64),
            _ => None,
        }
    }
}
impl FromValue for u32 {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i.clamp(0, u32::MAX as i64) as u32)
    }
}
impl FromValue for u16 {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i.clamp(0, u16::MAX as i64) as u16)
    }
}
impl FromValue for u64 {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i.max(0) as u64)
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i != 0)
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Real(r) => Some(*r),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}
impl FromValue for f32 {
    fn from_value(v: &Value) -> Option<Self> {
        f64::from_value(v).map(|f| f as f32)
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Real(r) => Some(r.to_string()),
            Value::Null => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(Vec<Value>);

impl Row {
    /// Column `i` as `T`; a NULL or a value of another type is an error that
    /// names the column (a schema mismatch, never user input).
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, StoreError> {
        let v = self.0.get(i).unwrap_or(&Value::Null);
        T::from_value(v).ok_or_else(|| {
            StoreError::Schema(format!(
                "column {i} holds {v:?}, not a {}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// Which SQL engine a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// What every backend's connection and transaction can do.
pub trait Sql {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; returns the rows it changed.
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs a query; returns all its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError>;

    /// The first row, if any.
    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
    /// Exactly one row (an aggregate, a row known to exist).
    fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row, StoreError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::Schema(format!("no row from `{}`", first_line(sql))))
    }
    /// An INSERT into a table with an `id` key; returns the new id.
    fn insert(&mut self, sql: &str, params: &[Value]) -> Result<i64, StoreError> {
        self.query_one(&format!("{sql} RETURNING id"), params)?
            .get(0)
    }
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or("")
}

/// The SQLite spelling of the shared SQL: the clock tokens become `strftime`.
fn sqlite_sql(sql: &str) -> String {
    const FMT: &str = "'%Y-%m-%dT%H:%M:%fZ'";
    let sql = replace_plus_secs(sql, |arg| {
        format!("strftime({FMT}, 'now', ({arg}) || ' seconds')")
    });
    sql.replace("NOW_UTC", &format!("strftime({FMT}, 'now')"))
}

/// The PostgreSQL spelling: `$N` parameters and `to_char(now() …)` for the clock.
pub(crate) fn postgres_sql(sql: &str) -> String {
    const FMT: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";
    let sql = replace_plus_secs(sql, |arg| {
        format!(
            "to_char((now() + make_interval(secs => ({arg})::float8)) AT TIME ZONE 'UTC', {FMT})"
        )
    });
    let sql = sql.replace(
        "NOW_UTC",
        &format!("to_char(now() AT TIME ZONE 'UTC', {FMT})"),
    );
    // `?N` -> `$N`, outside string literals.
    let mut out = String::with_capacity(sql.len());
    let mut in_str = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                in_str = !in_str;
                out.push(c);
            }
            '?' if !in_str => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

/// Replaces each `NOW_PLUS_SECS(arg)` with `f(arg)`.
fn replace_plus_secs(sql: &str, f: impl Fn(&str) -> String) -> String {
    const TOKEN: &str = "NOW_PLUS_SECS(";
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(TOKEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at + TOKEN.len()..];
        let mut depth = 1;
        let end = after
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(after.len(), |(i, _)| i);
        out.push_str(&f(&after[..end]));
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(r) => ToSqlOutput::Borrowed(ValueRef::Real(*r)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn sqlite_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::Text(String::from_utf8_lossy(t).into()),
    }
}

impl Sql for rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        sqlite_exec(self, sql, params)
    }
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        sqlite_query(self, sql, params)
    }
}

/// A SQLite transaction (rusqlite's borrows the connection immutably).
struct SqliteTx<'a>(&'a rusqlite::Transaction<'a>);

impl Sql for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        sqlite_exec(self.0, sql, params)
    }
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        sqlite_query(self.0, sql, params)
    }
}

fn sqlite_exec(c: &rusqlite::Connection, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
    let mut st = c.prepare_cached(&sqlite_sql(sql))?;
    Ok(st.execute(rusqlite::params_from_iter(params.iter()))? as u64)
}

fn sqlite_query(
    c: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Row>, StoreError> {
    let mut st = c.prepare_cached(&sqlite_sql(sql))?;
    let n = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            vals.push(sqlite_value(r.get_ref(i)?));
        }
        out.push(Row(vals));
    }
    Ok(out)
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_string().to_sql(ty, out),
            },
            Value::Real(r) => match *ty {
                Type::FLOAT4 => (*r as f32).to_sql(ty, out),
                _ => r.to_sql(ty, out),
            },
            Value::Text(s) => s.to_sql(ty, out),
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)? as i64),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)? as i64),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)? as f64),
            _ => Value::Text(String::from_utf8_lossy(raw).into_owned()),
        })
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Value::Null)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A PostgreSQL connection with its prepared statements (one round trip saved
/// per statement after the first).
///
/// The `postgres` client blocks on its own small runtime, which tokio forbids on
/// a thread that drives a tokio runtime; the store is also used from such threads
/// (the campaign loop, the console's history). [`off_runtime`] moves each use
/// (connect, statements, close) to a scoped thread there.
pub struct Pg {
    /// `None` only while being dropped.
    client: Option<postgres::Client>,
    cache: HashMap<String, postgres::Statement>,
}

impl Pg {
    pub fn new(client: postgres::Client) -> Self {
        Self {
            client: Some(client),
            cache: HashMap::new(),
        }
    }

    pub fn client(&mut self) -> Result<&mut postgres::Client, StoreError> {
        Ok(self.parts()?.0)
    }

    /// The client and its statement cache, borrowed together.
    fn parts(
        &mut self,
    ) -> Result<
        (
            &mut postgres::Client,
            &mut HashMap<String, postgres::Statement>,
        ),
        StoreError,
    > {
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| StoreError::Schema("the PostgreSQL connection is closed".into()))?;
        Ok((client, &mut self.cache))
    }
}

impl Drop for Pg {
    /// Closing the connection blocks on the client's runtime: done on another
    /// thread when this one drives tokio.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if in_runtime() {
                let _ = std::thread::Builder::new()
                    .name("pg-close".into())
                    .spawn(move || drop(client));
            }
        }
    }
}

/// Whether this thread drives a tokio runtime (where blocking clients panic).
pub fn in_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Runs `f` here, or on a scoped thread when this thread drives a tokio runtime.
pub fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if !in_runtime() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

fn pg_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn pg_rows(rows: Vec<postgres::Row>) -> Result<Vec<Row>, StoreError> {
    rows.into_iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.try_get::<_, Value>(i))
                .collect::<Result<Vec<_>, _>>()
                .map(Row)
        })
        .collect::<Result<_, _>>()
        .map_err(StoreError::from)
}

/// Prepares `sql` once per connection.
fn statement<C: postgres::GenericClient>(
    client: &mut C,
    cache: &mut HashMap<String, postgres::Statement>,
    sql: &str,
) -> Result<postgres::Statement, StoreError> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(&postgres_sql(sql))?;
    cache.insert(sql.to_string(), s.clone());
    Ok(s)
}

impl Sql for Pg {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let (client, cache) = self.parts()?;
        let st = statement(client, cache, sql)?;
        Ok(client.execute(&st, &pg_params(params))?)
    }
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let (client, cache) = self.parts()?;
        let st = statement(client, cache, sql)?;
        pg_rows(client.query(&st, &pg_params(params))?)
    }
}

struct PgTx<'a> {
    tx: postgres::Transaction<'a>,
    cache: &'a mut HashMap<String, postgres::Statement>,
}

impl Sql for PgTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let st = statement(&mut self.tx, self.cache, sql)?;
        Ok(self.tx.execute(&st, &pg_params(params))?)
    }
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let st = statement(&mut self.tx, self.cache, sql)?;
        pg_rows(self.tx.query(&st, &pg_params(params))?)
    }
}

/// A connection to either backend.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Pg>),
}

impl Conn {
    pub fn sql(&mut self) -> &mut dyn Sql {
        match self {
            Conn::Sqlite(c) => c,
            Conn::Postgres(p) => p.as_mut(),
        }
    }

    /// Runs `f` in one transaction: committed when `f` succeeds, rolled back when
    /// it fails (or panics).
    pub fn transaction<R>(
        &mut self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        match self {
            Conn::Sqlite(c) => {
                let tx = c.transaction()?;
                let r = f(&mut SqliteTx(&tx))?;
                tx.commit()?;
                Ok(r)
            }
            Conn::Postgres(p) => {
                let (client, cache) = p.parts()?;
                // Prepared statements belong to their connection: a reconnect makes
                // a new `Pg`, with an empty cache.
                let tx = client.transaction()?;
                let mut t = PgTx { tx, cache };
                let r = f(&mut t)?;
                t.tx.commit()?;
                Ok(r)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_clock_tokens_are_spelled_per_engine() {
        let sql =
            "UPDATE t SET a = ?2, b = '?', c = NOW_PLUS_SECS(?3) WHERE id = ?1 AND d < NOW_UTC";
        let pg = postgres_sql(sql);
        assert!(pg.contains("a = $2, b = '?'"), "{pg}");
        assert!(pg.contains("make_interval(secs => ($3)::float8)"), "{pg}");
        assert!(pg.contains("d < to_char(now() AT TIME ZONE 'UTC'"), "{pg}");
        let lite = sqlite_sql(sql);
        assert!(
            lite.contains("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', (?3) || ' seconds')"),
            "{lite}"
        );
        assert!(
            lite.ends_with("d < strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"),
            "{lite}"
        );
    }

    #[test]
    fn sqlite_clock_text_sorts_with_leases() {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        let r = Sql::query_one(
            &mut c,
            "SELECT NOW_UTC, NOW_PLUS_SECS(?1), NOW_PLUS_SECS(?2)",
            vals![30, -30],
        )
        .unwrap();
        let (now, later, earlier): (String, String, String) =
            (r.get(0).unwrap(), r.get(1).unwrap(), r.get(2).unwrap());
        assert_eq!(now.len(), "2026-12-06T05:40:01.123Z".len(), "{now}");
        assert!(earlier < now && now < later, "{earlier} {now} {later}");
    }

    #[test]
    fn values_convert_both_ways() {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.exec(
            "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a INTEGER, b REAL, s TEXT)",
            &[],
        )
        .unwrap();
        let id = c
            .insert(
                "INSERT INTO t (a, b, s) VALUES (?1, ?2, ?3)",
                vals![true, 0.5f32, None::<String>],
            )
            .unwrap();
        assert_eq!(id, 1);
        let r = Sql::query_one(&mut c, "SELECT a, b, s FROM t WHERE id = ?1", vals![id]).unwrap();
        assert!(r.get::<bool>(0).unwrap());
        assert_eq!(r.get::<Option<f32>>(1).unwrap(), Some(0.5));
        assert_eq!(r.get::<Option<String>>(2).unwrap(), None);
        assert!(r.get::<String>(2).is_err(), "NULL is not a String");
    }
}
