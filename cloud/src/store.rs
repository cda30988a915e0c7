//! The readings database: one small interface ([`Store`]) with two backends, SQLite (embedded, built from
//! source by `rusqlite`'s `bundled` feature) and PostgreSQL.
//!
//! Schema (the same on both; `sqlite3 FILE` or `psql` query it directly, pandas reads it with `read_sql`):
//!
//! ```sql
//! CREATE TABLE readings (
//!     gateway      TEXT    NOT NULL,  -- topic segment of grid/{gateway}/events
//!     lmu          BIGINT  NOT NULL,  -- LMU id
//!     seq          BIGINT  NOT NULL,  -- the LMU's report sequence number
//!     generated_ms BIGINT  NOT NULL,  -- when the LMU took the reading (ms, the gateway's clock)
//!     received_ms  BIGINT  NOT NULL,  -- when the cloud received it (ms since the Unix epoch, wall clock)
//!     v1_cv, v2_cv, v3_cv  INTEGER,   -- phase voltages, centivolts
//!     i1_ma, i2_ma, i3_ma  BIGINT,    -- phase currents, milliamperes
//!     p_w          BIGINT,            -- active power through the LMU, W (downstream positive)
//!     q_var        BIGINT,            -- reactive power, var
//!     flags        INTEGER,           -- report flags: 1 open, 2 locked out, 4 loss of phase, 8 pickup, 16 PQ violation
//!     PRIMARY KEY (lmu, gateway, generated_ms, seq)
//! ) WITHOUT ROWID;                    -- SQLite only: the table is its primary key's B-tree
//! ```
//!
//! Inserts are idempotent on the primary key (`INSERT OR IGNORE` / `ON CONFLICT DO NOTHING`), so an MQTT QoS 1
//! redelivery or a restart that sees a batch again never duplicates a reading. The key leads with the LMU so one
//! LMU's readings are contiguous (its time series is a range scan) and a batch's rows land at the end of each
//! LMU's range. On SQLite the table is `WITHOUT ROWID` (one B-tree per row written, not a table and an index),
//! rows go in with multi-row `INSERT` statements, one transaction per call, in WAL mode with
//! `synchronous=NORMAL` (a committed batch survives a killed process; it is acknowledged to the broker only
//! after the commit). On PostgreSQL one `INSERT ... SELECT FROM UNNEST(arrays) ON CONFLICT DO NOTHING` takes a
//! whole batch. A database created by an earlier version (key `(gateway, lmu, generated_ms, seq)`, a rowid
//! table) keeps its layout and works unchanged: the key holds the same columns.

use std::fmt;

/// One stored reading (units in the field names).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Reading {
    pub gateway: String,
    pub lmu: u32,
    pub seq: u32,
    pub generated_ms: u64,
    pub received_ms: u64,
    pub v_cv: [u16; 3],
    pub i_ma: [u32; 3],
    pub p_w: i32,
    pub q_var: i32,
    pub flags: u16,
}

/// Sums over every stored reading: a checksum of the values a test compares with the twin's own record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub count: i64,
    pub lmu: i64,
    pub seq: i64,
    pub generated_ms: i64,
    pub v_cv: i64,
    pub i_ma: i64,
    pub p_w: i64,
    pub q_var: i64,
    pub flags: i64,
}

impl Totals {
    /// Adds one reading (what the database's `SUM`s compute).
    pub fn add(&mut self, r: &Reading) {
        self.count += 1;
        self.lmu += r.lmu as i64;
        self.seq += r.seq as i64;
        self.generated_ms += r.generated_ms as i64;
        self.v_cv += r.v_cv.iter().map(|&v| v as i64).sum::<i64>();
        self.i_ma += r.i_ma.iter().map(|&v| v as i64).sum::<i64>();
        self.p_w += r.p_w as i64;
        self.q_var += r.q_var as i64;
        self.flags += r.flags as i64;
    }
}

/// A database error, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

fn e<E: fmt::Display>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |err| StoreError(format!("{what}: {err}"))
}

/// Most rows one query returns.
pub const MAX_ROWS: usize = 100_000;

/// The readings database.
pub trait Store: Send {
    /// Inserts `readings` in one transaction; returns how many were new (the rest were already stored).
    fn insert(&mut self, readings: &[Reading]) -> Result<usize, StoreError>;
    /// Sums over all readings.
    fn totals(&mut self) -> Result<Totals, StoreError>;
    /// The latest reading of every (gateway, LMU), ordered by gateway and LMU.
    fn latest(&mut self) -> Result<Vec<Reading>, StoreError>;
    /// Readings generated at or after `since_ms`, oldest first (of one LMU if `lmu` is given), at most `limit`
    /// (capped at [`MAX_ROWS`]).
    fn series(&mut self, lmu: Option<u32>, since_ms: u64, limit: usize) -> Result<Vec<Reading>, StoreError>;
    /// Which backend this is ("sqlite" or "postgres").
    fn kind(&self) -> &'static str;
}

/// Where the database is: `sqlite:FILE`, `sqlite::memory:` or `postgres://...` / `postgresql://...`.
pub fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            return Err(StoreError(format!("--db `{url}`: give a file, e.g. sqlite:readings.db")));
        }
        Ok(Box::new(Sqlite::open(path)?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(Postgres::open(url)?))
    } else {
        Err(StoreError(format!("--db `{url}`: expected sqlite:FILE or postgres://USER@HOST/DB")))
    }
}

const COLS: &str =
    "gateway, lmu, seq, generated_ms, received_ms, v1_cv, v2_cv, v3_cv, i1_ma, i2_ma, i3_ma, p_w, q_var, flags";

const COLUMNS: &str = "gateway TEXT NOT NULL, lmu BIGINT NOT NULL, seq BIGINT NOT NULL,
    generated_ms BIGINT NOT NULL, received_ms BIGINT NOT NULL,
    v1_cv INTEGER NOT NULL, v2_cv INTEGER NOT NULL, v3_cv INTEGER NOT NULL,
    i1_ma BIGINT NOT NULL, i2_ma BIGINT NOT NULL, i3_ma BIGINT NOT NULL,
    p_w BIGINT NOT NULL, q_var BIGINT NOT NULL, flags INTEGER NOT NULL,
    PRIMARY KEY (lmu, gateway, generated_ms, seq)";

/// Columns a reading takes in a row.
const NCOLS: usize = 14;

const TOTALS: &str = "SELECT COUNT(*), COALESCE(SUM(lmu),0), COALESCE(SUM(seq),0), COALESCE(SUM(generated_ms),0),
    COALESCE(SUM(v1_cv+v2_cv+v3_cv),0), COALESCE(SUM(i1_ma+i2_ma+i3_ma),0), COALESCE(SUM(p_w),0),
    COALESCE(SUM(q_var),0), COALESCE(SUM(flags),0) FROM readings";

/// Rows per multi-row `INSERT` statement, largest first: a batch of n readings takes n / 128 statements of 128
/// rows, then at most 7 of 16 and 15 of 1 (each a cached prepared statement; 128 x 14 parameters stays far
/// below SQLite's limit of 32,766).
const SQLITE_CHUNKS: [usize; 3] = [128, 16, 1];

fn multi_row_insert(rows: usize) -> String {
    let mut sql = format!("INSERT OR IGNORE INTO readings ({COLS}) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..NCOLS {
            if c > 0 {
                sql.push(',');
            }
            sql.push('?');
        }
        sql.push(')');
    }
    sql
}

/// SQLite backend (one file; WAL journal).
pub struct Sqlite {
    conn: rusqlite::Connection,
    /// The multi-row insert statements' text, one per entry of [`SQLITE_CHUNKS`].
    inserts: Vec<String>,
}

impl Sqlite {
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let conn =
            if path == ":memory:" { rusqlite::Connection::open_in_memory() } else { rusqlite::Connection::open(path) }
                .map_err(|err| StoreError(format!("cannot open SQLite database {path}: {err}")))?;
        // WAL: readers never block the writer; synchronous=NORMAL: a commit is durable against a killed
        // process (the WAL is synced at checkpoints). A 64 MiB page cache holds the key's hot pages (the tail
        // of every LMU's range) for tens of thousands of LMUs. A batch touches one leaf page per LMU, so a
        // checkpoint every 16,000 pages (64 MiB of WAL) writes each hot page once for many commits: measured
        // 2.4x the ingest rate of a checkpoint every 4,000 pages (benches/ingest.rs).
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;
             PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=16000;",
        )
        .map_err(e("setting SQLite journal mode"))?;
        conn.execute_batch(&format!("CREATE TABLE IF NOT EXISTS readings ({COLUMNS}) WITHOUT ROWID"))
            .map_err(e("creating table readings"))?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Sqlite { conn, inserts: SQLITE_CHUNKS.iter().map(|&n| multi_row_insert(n)).collect() })
    }
}

fn sqlite_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Reading> {
    Ok(Reading {
        gateway: row.get(0)?,
        lmu: row.get::<_, i64>(1)? as u32,
        seq: row.get::<_, i64>(2)? as u32,
        generated_ms: row.get::<_, i64>(3)? as u64,
        received_ms: row.get::<_, i64>(4)? as u64,
        v_cv: [row.get::<_, i64>(5)? as u16, row.get::<_, i64>(6)? as u16, row.get::<_, i64>(7)? as u16],
        i_ma: [row.get::<_, i64>(8)? as u32, row.get::<_, i64>(9)? as u32, row.get::<_, i64>(10)? as u32],
        p_w: row.get::<_, i64>(11)? as i32,
        q_var: row.get::<_, i64>(12)? as i32,
        flags: row.get::<_, i64>(13)? as u16,
    })
}

fn params(r: &Reading) -> [i64; 13] {
    [
        r.lmu as i64,
        r.seq as i64,
        r.generated_ms as i64,
        r.received_ms as i64,
        r.v_cv[0] as i64,
        r.v_cv[1] as i64,
        r.v_cv[2] as i64,
        r.i_ma[0] as i64,
        r.i_ma[1] as i64,
        r.i_ma[2] as i64,
        r.p_w as i64,
        r.q_var as i64,
        r.flags as i64,
    ]
}

impl Store for Sqlite {
    fn insert(&mut self, readings: &[Reading]) -> Result<usize, StoreError> {
        let Sqlite { conn, inserts } = self;
        let tx = conn.transaction().map_err(e("beginning a transaction"))?;
        let mut n = 0;
        let mut rest = readings;
        for (&rows, sql) in SQLITE_CHUNKS.iter().zip(inserts.iter()) {
            if rest.len() < rows {
                continue;
            }
            let mut st = tx.prepare_cached(sql).map_err(e("preparing insert"))?;
            while rest.len() >= rows {
                let (head, tail) = rest.split_at(rows);
                let mut k = 1;
                for r in head {
                    st.raw_bind_parameter(k, r.gateway.as_str()).map_err(e("binding a reading"))?;
                    for (j, v) in params(r).into_iter().enumerate() {
                        st.raw_bind_parameter(k + 1 + j, v).map_err(e("binding a reading"))?;
                    }
                    k += NCOLS;
                }
                n += st.raw_execute().map_err(e("inserting readings"))?;
                rest = tail;
            }
        }
        tx.commit().map_err(e("committing readings"))?;
        Ok(n)
    }

    fn totals(&mut self) -> Result<Totals, StoreError> {
        self.conn
            .query_row(TOTALS, [], |r| {
                Ok(Totals {
                    count: r.get(0)?,
                    lmu: r.get(1)?,
                    seq: r.get(2)?,
                    generated_ms: r.get(3)?,
                    v_cv: r.get(4)?,
                    i_ma: r.get(5)?,
                    p_w: r.get(6)?,
                    q_var: r.get(7)?,
                    flags: r.get(8)?,
                })
            })
            .map_err(e("summing readings"))
    }

    fn latest(&mut self) -> Result<Vec<Reading>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLS} FROM readings r WHERE generated_ms = (SELECT MAX(generated_ms) FROM readings x
                 WHERE x.gateway = r.gateway AND x.lmu = r.lmu) ORDER BY gateway, lmu, seq DESC"
            ))
            .map_err(e("preparing latest"))?;
        let mut out: Vec<Reading> = st
            .query_map([], sqlite_row)
            .map_err(e("reading latest"))?
            .collect::<Result<_, _>>()
            .map_err(e("reading latest"))?;
        out.dedup_by(|b, a| a.gateway == b.gateway && a.lmu == b.lmu);
        Ok(out)
    }

    fn series(&mut self, lmu: Option<u32>, since_ms: u64, limit: usize) -> Result<Vec<Reading>, StoreError> {
        let limit = limit.min(MAX_ROWS) as i64;
        let since = since_ms.min(i64::MAX as u64) as i64;
        let rows = match lmu {
            Some(l) => {
                let mut st = self
                    .conn
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM readings WHERE lmu = ?1 AND generated_ms >= ?2 ORDER BY generated_ms, gateway LIMIT ?3"
                    ))
                    .map_err(e("preparing series"))?;
                st.query_map(rusqlite::params![l as i64, since, limit], sqlite_row)
                    .map_err(e("reading series"))?
                    .collect::<Result<Vec<_>, _>>()
            }
            None => {
                let mut st = self
                    .conn
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM readings WHERE generated_ms >= ?1 ORDER BY generated_ms, gateway, lmu LIMIT ?2"
                    ))
                    .map_err(e("preparing series"))?;
                st.query_map(rusqlite::params![since, limit], sqlite_row)
                    .map_err(e("reading series"))?
                    .collect::<Result<Vec<_>, _>>()
            }
        };
        rows.map_err(e("reading series"))
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

/// PostgreSQL backend (the synchronous `postgres` client; used from the store's own thread).
pub struct Postgres {
    client: postgres::Client,
    /// `INSERT ... SELECT FROM UNNEST(one array per column) ON CONFLICT DO NOTHING`: a whole batch in one
    /// statement, prepared once.
    insert: postgres::Statement,
}

impl Postgres {
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut client = postgres::Client::connect(url, postgres::NoTls)
            .map_err(|err| StoreError(format!("cannot connect to PostgreSQL at {url}: {err}")))?;
        client
            .batch_execute(&format!("CREATE TABLE IF NOT EXISTS readings ({COLUMNS})"))
            .map_err(e("creating table readings"))?;
        let insert = client
            .prepare(&format!(
                "INSERT INTO readings ({COLS}) SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[],
                 $4::BIGINT[], $5::BIGINT[], $6::INT[], $7::INT[], $8::INT[], $9::BIGINT[], $10::BIGINT[],
                 $11::BIGINT[], $12::BIGINT[], $13::BIGINT[], $14::INT[]) ON CONFLICT DO NOTHING"
            ))
            .map_err(e("preparing insert"))?;
        Ok(Postgres { client, insert })
    }
}

fn pg_row(row: &postgres::Row) -> Reading {
    let g = |i: usize| -> i64 {
        // INTEGER columns come back as i32, BIGINT as i64.
        row.try_get::<_, i64>(i).unwrap_or_else(|_| row.try_get::<_, i32>(i).map(i64::from).unwrap_or(0))
    };
    Reading {
        gateway: row.try_get(0).unwrap_or_default(),
        lmu: g(1) as u32,
        seq: g(2) as u32,
        generated_ms: g(3) as u64,
        received_ms: g(4) as u64,
        v_cv: [g(5) as u16, g(6) as u16, g(7) as u16],
        i_ma: [g(8) as u32, g(9) as u32, g(10) as u32],
        p_w: g(11) as i32,
        q_var: g(12) as i32,
        flags: g(13) as u16,
    }
}

/// Rows per PostgreSQL insert statement (bounds the arrays' size).
const PG_CHUNK: usize = 10_000;

impl Store for Postgres {
    fn insert(&mut self, readings: &[Reading]) -> Result<usize, StoreError> {
        let mut tx = self.client.transaction().map_err(e("beginning a transaction"))?;
        let mut n = 0;
        for part in readings.chunks(PG_CHUNK) {
            let gw: Vec<&str> = part.iter().map(|r| r.gateway.as_str()).collect();
            let rows: Vec<[i64; 13]> = part.iter().map(params).collect();
            let col = |i: usize| -> Vec<i64> { rows.iter().map(|p| p[i]).collect() };
            let col32 = |i: usize| -> Vec<i32> { rows.iter().map(|p| p[i] as i32).collect() };
            let (lmu, seq, gen_ms, rec_ms) = (col(0), col(1), col(2), col(3));
            let (v1, v2, v3) = (col32(4), col32(5), col32(6));
            let (i1, i2, i3, p, q, fl) = (col(7), col(8), col(9), col(10), col(11), col32(12));
            n += tx
                .execute(&self.insert, &[&gw, &lmu, &seq, &gen_ms, &rec_ms, &v1, &v2, &v3, &i1, &i2, &i3, &p, &q, &fl])
                .map_err(e("inserting readings"))? as usize;
        }
        tx.commit().map_err(e("committing readings"))?;
        Ok(n)
    }

    fn totals(&mut self) -> Result<Totals, StoreError> {
        let q = "SELECT COUNT(*)::BIGINT, COALESCE(SUM(lmu),0)::BIGINT, COALESCE(SUM(seq),0)::BIGINT,
            COALESCE(SUM(generated_ms),0)::BIGINT, COALESCE(SUM(v1_cv+v2_cv+v3_cv),0)::BIGINT,
            COALESCE(SUM(i1_ma+i2_ma+i3_ma),0)::BIGINT, COALESCE(SUM(p_w),0)::BIGINT, COALESCE(SUM(q_var),0)::BIGINT,
            COALESCE(SUM(flags),0)::BIGINT FROM readings";
        let row = self.client.query_one(q, &[]).map_err(e("summing readings"))?;
        let g = |i: usize| row.try_get::<_, i64>(i).map_err(e("summing readings"));
        Ok(Totals {
            count: g(0)?,
            lmu: g(1)?,
            seq: g(2)?,
            generated_ms: g(3)?,
            v_cv: g(4)?,
            i_ma: g(5)?,
            p_w: g(6)?,
            q_var: g(7)?,
            flags: g(8)?,
        })
    }

    fn latest(&mut self) -> Result<Vec<Reading>, StoreError> {
        let rows = self
            .client
            .query(
                &format!("SELECT DISTINCT ON (gateway, lmu) {COLS} FROM readings ORDER BY gateway, lmu, generated_ms DESC, seq DESC"),
                &[],
            )
            .map_err(e("reading latest"))?;
        Ok(rows.iter().map(pg_row).collect())
    }

    fn series(&mut self, lmu: Option<u32>, since_ms: u64, limit: usize) -> Result<Vec<Reading>, StoreError> {
        let limit = limit.min(MAX_ROWS) as i64;
        let since = since_ms.min(i64::MAX as u64) as i64;
        let rows = match lmu {
            Some(l) => self.client.query(
                &format!(
                    "SELECT {COLS} FROM readings WHERE lmu = $1 AND generated_ms >= $2 ORDER BY generated_ms, gateway LIMIT $3"
                ),
                &[&(l as i64), &since, &limit],
            ),
            None => self.client.query(
                &format!("SELECT {COLS} FROM readings WHERE generated_ms >= $1 ORDER BY generated_ms, gateway, lmu LIMIT $2"),
                &[&since, &limit],
            ),
        }
        .map_err(e("reading series"))?;
        Ok(rows.iter().map(pg_row).collect())
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

type Job = Box<dyn FnOnce(&mut dyn Store) + Send>;

/// A store owned by its own thread (the PostgreSQL client must not run inside the async runtime, and SQLite
/// writes block): async callers send it closures.
#[derive(Clone)]
pub struct StoreHandle {
    tx: tokio::sync::mpsc::Sender<Job>,
    kind: &'static str,
}

impl StoreHandle {
    /// Opens the database named by `url` on a new thread.
    pub fn open(url: &str) -> Result<StoreHandle, StoreError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(256);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let url = url.to_string();
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || match open(&url) {
                Ok(mut s) => {
                    let _ = ready_tx.send(Ok(s.kind()));
                    while let Some(job) = rx.blocking_recv() {
                        job(s.as_mut());
                    }
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                }
            })
            .map_err(|err| StoreError(format!("cannot start the store thread: {err}")))?;
        let kind = ready_rx.recv().map_err(|_| StoreError("the store thread ended while opening".into()))??;
        Ok(StoreHandle { tx, kind })
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Runs `f` on the store's thread and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move |s: &mut dyn Store| {
                let _ = tx.send(f(s));
            }))
            .await
            .map_err(|_| StoreError("the store thread has stopped".into()))?;
        rx.await.map_err(|_| StoreError("the store thread has stopped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample(lmu: u32, seq: u32) -> Reading {
        Reading {
            gateway: "gw".into(),
            lmu,
            seq,
            generated_ms: 900_000 * seq as u64 + lmu as u64,
            received_ms: 1,
            v_cv: [23_000, 23_010, 22_990],
            i_ma: [1_000, 2_000, 3_000],
            p_w: -500,
            q_var: 20,
            flags: 1,
        }
    }

    #[test]
    fn sqlite_insert_is_idempotent_and_queries_work() {
        let mut s = Sqlite::open(":memory:").unwrap();
        let rs: Vec<_> = (1..=3).flat_map(|l| (0..4).map(move |q| sample(l, q))).collect();
        assert_eq!(s.insert(&rs).unwrap(), 12);
        assert_eq!(s.insert(&rs[..5]).unwrap(), 0);
        let mut want = Totals::default();
        rs.iter().for_each(|r| want.add(r));
        assert_eq!(s.totals().unwrap(), want);
        let latest = s.latest().unwrap();
        assert_eq!(latest.len(), 3);
        assert!(latest.iter().all(|r| r.seq == 3));
        let series = s.series(Some(2), 900_000, 10).unwrap();
        assert_eq!(series.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(series[0], sample(2, 1));
        assert_eq!(s.series(None, 0, 5).unwrap().len(), 5);
    }

    #[test]
    fn bad_urls_are_named() {
        assert!(open("mysql://x").err().unwrap().0.contains("expected sqlite:FILE"));
        assert!(open("sqlite:").err().unwrap().0.contains("give a file"));
        assert!(open("sqlite:/nonexistent-dir/x.db").err().unwrap().0.contains("cannot open SQLite database"));
    }
}
