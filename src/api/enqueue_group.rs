//! Group commit for `POST /v1/notifications`: single calls that arrive together share one
//! transaction. One committer task owns a channel; while it writes group N, the calls that
//! arrive queue up and become group N+1. There is no timer: an idle committer writes a lone
//! call at once. Each caller is answered only after its group committed (a 202 is durable).
//!
//! A refusal stays with its item: unknown partners and reused keys are answered per item by
//! the group's SQL, and a group whose statement fails is split in halves and retried until
//! the item to blame fails alone.

use std::collections::{HashSet, VecDeque};
use std::ops::Range;

use futures::FutureExt;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::ApiError;
use crate::model::NewNotification;
use crate::store::Db;
use crate::store::{Enqueued, GroupItem, Written, classify, write_group};

/// Most calls one group carries: bounds one statement's arrays and one transaction's size.
const MAX_GROUP: usize = 500;
/// Calls waiting for the committer before senders wait too.
const QUEUE: usize = 4096;

/// The answer to one call: created now (202), or the first answer to its key (200).
#[derive(Debug)]
pub enum Answer {
    Created(Enqueued),
    Repeated(Box<RawValue>),
}

type Reply = Result<Answer, ApiError>;

struct Job {
    notification: NewNotification,
    key: Option<String>,
    reply: oneshot::Sender<Reply>,
}

/// The handle the API holds; cloning it is cheap. The committer stops when every handle
/// is gone.
#[derive(Clone)]
pub struct EnqueueGroup {
    jobs: mpsc::Sender<Job>,
}

impl EnqueueGroup {
    /// Starts the committer task on the current runtime.
    pub fn spawn(pool: Db) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx));
        Self { jobs }
    }

    /// Enqueues a validated notification with its group; returns once the group committed.
    pub async fn enqueue(&self, notification: NewNotification, key: Option<String>) -> Reply {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            notification,
            key,
            reply,
        };
        let stopped = || ApiError::Internal(anyhow::anyhow!("the enqueue committer has stopped"));
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(pool: Db, mut rx: mpsc::Receiver<Job>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while waiting.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => break,
            }
        }
        let (group, held) = form_group(std::mem::take(&mut waiting));
        waiting = held;
        if commit(&pool, group).await {
            // The database was unavailable for that group: whoever queued up meanwhile is
            // answered 503 now rather than after another full wait of its own, so no caller
            // waits longer than one attempt (the pool's acquire timeout) for its answer.
            while let Ok(job) = rx.try_recv() {
                waiting.push_back(job);
            }
            for job in waiting.drain(..) {
                let _ = job.reply.send(Err(unavailable()));
            }
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::Unavailable(sqlx::Error::Protocol(
        "the database was unavailable for the previous group".into(),
    ))
}

/// The next group, in arrival order, and what waits for the one after: calls beyond
/// `MAX_GROUP`, and a repeat of a key already in the group, which then finds the first call
/// committed and gets its answer (or a conflict), exactly as across groups. Callers that
/// hung up before their group was written are dropped, as a rolled back call would be.
fn form_group(waiting: VecDeque<Job>) -> (Vec<Job>, VecDeque<Job>) {
    let mut group = Vec::with_capacity(waiting.len().min(MAX_GROUP));
    let mut held = VecDeque::new();
    let mut keys: HashSet<(Uuid, String)> = HashSet::new();
    for job in waiting {
        if job.reply.is_closed() {
            continue;
        }
        let repeat = job
            .key
            .as_ref()
            .is_some_and(|k| !keys.insert((job.notification.partner_id, k.clone())));
        if repeat || group.len() == MAX_GROUP {
            held.push_back(job);
        } else {
            group.push(job);
        }
    }
    (group, held)
}

/// Writes `group` and answers each caller; true when the database was unavailable. A panic
/// while writing answers everyone with an internal error rather than leaving them waiting,
/// and the committer goes on.
async fn commit(pool: &Db, group: Vec<Job>) -> bool {
    if group.is_empty() {
        return false;
    }
    let items: Vec<GroupItem<'_>> = group
        .iter()
        .map(|j| GroupItem {
            notification: &j.notification,
            key: j.key.as_deref(),
        })
        .collect();
    let answers = std::panic::AssertUnwindSafe(write_isolated(pool, &items))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            (0..items.len())
                .map(|_| Err(internal("writing the group panicked")))
                .collect()
        });
    drop(items);
    let unavailable = answers
        .iter()
        .any(|a| matches!(a, Err(ApiError::Unavailable(_))));
    for (job, answer) in group.into_iter().zip(answers) {
        // The caller may have hung up meanwhile; what committed stays committed.
        let _ = job.reply.send(answer);
    }
    unavailable
}

/// Writes `items` in as few transactions as possible: the whole group, or, when a statement
/// fails because of the data, each half again, down to the one item to blame. Answers in
/// item order.
async fn write_isolated(pool: &Db, items: &[GroupItem<'_>]) -> Vec<Reply> {
    let mut answers: Vec<Option<Reply>> = (0..items.len()).map(|_| None).collect();
    // A stack of the ranges still to write; it starts with the whole group.
    let mut todo: Vec<Range<usize>> = Vec::with_capacity(8);
    todo.push(0..items.len());
    while let Some(range) = todo.pop() {
        match write_group(pool, &items[range.clone()]).await {
            Ok(written) => {
                for (i, w) in range.zip(written) {
                    answers[i] = Some(reply(w));
                }
            }
            // The database is down or the group lost a race: each caller gets the 503 it can
            // retry on, as a single enqueue would.
            Err(e) if crate::store::is_transient(&e) => {
                tracing::warn!(error = %e, items = range.len(), "enqueue group: database unavailable");
                let text = e.to_string();
                for i in range {
                    answers[i] = Some(Err(ApiError::Unavailable(sqlx::Error::Protocol(
                        text.clone(),
                    ))));
                }
            }
            Err(e) if blames_the_data(&e) && range.len() > 1 => {
                let mid = range.start + range.len() / 2;
                // Popped last first: the first half is written first.
                todo.push(mid..range.end);
                todo.push(range.start..mid);
            }
            Err(e) if blames_the_data(&e) => {
                answers[range.start] = Some(Err(classify(e).into()));
            }
            Err(e) => {
                tracing::error!(error = %e, items = range.len(), "enqueue group failed");
                for i in range {
                    answers[i] = Some(Err(internal("the database refused the group")));
                }
            }
        }
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(internal("an item of the group was not answered"))))
        .collect()
}

fn reply(written: Written) -> Reply {
    match written {
        Written::Created(answer) => Ok(Answer::Created(answer)),
        Written::Repeated(answer) => Ok(Answer::Repeated(answer)),
        Written::Refused(e) => Err(e.into()),
    }
}

/// True when PostgreSQL refused a statement for what it was given (bad value, constraint,
/// conflict), so a smaller group may pass; false when the database or the connection is in
/// trouble (class 08 connection, 53 resources, 57 operator intervention) or the error is
/// not the server's: splitting would only repeat the failure.
fn blames_the_data(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => !db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("53") || c.starts_with("57")),
        _ => false,
    }
}

fn internal(message: &'static str) -> ApiError {
    ApiError::Internal(anyhow::anyhow!(message))
}
