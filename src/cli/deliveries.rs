//! `callbackd deliveries list|show|replay|cancel`.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use uuid::Uuid;

use super::{Output, print_json, table};
use crate::model::{DeliveryState, Environment, EventType, Trigger};
use crate::store::Db;
use crate::store::{self, Cursor, Delivery, DeliveryFilter, StoreError};

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The next_cursor printed by a previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One delivery with its attempt log.
    Show { id: Uuid },
    /// Replay the given deliveries, or every one matching the filter (state dead by default).
    Replay {
        ids: Vec<Uuid>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Cancel pending deliveries: they are never sent again.
    Cancel {
        #[arg(required = true)]
        ids: Vec<Uuid>,
    },
}

#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    #[arg(long)]
    state: Option<DeliveryState>,
    #[arg(long)]
    partner: Option<Uuid>,
    #[arg(long)]
    endpoint: Option<Uuid>,
    #[arg(long)]
    environment: Option<Environment>,
    #[arg(long)]
    event_type: Option<EventType>,
    #[arg(long)]
    proposal: Option<Uuid>,
    /// RFC 3339, e.g. 2026-11-25T00:00:00Z (creation time, inclusive).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// RFC 3339 (creation time, exclusive).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
}

impl FilterArgs {
    fn filter(&self) -> DeliveryFilter {
        DeliveryFilter {
            state: self.state,
            partner_id: self.partner,
            endpoint_id: self.endpoint,
            environment: self.environment,
            event_type: self.event_type,
            proposal: self.proposal,
            since: self.since,
            until: self.until,
        }
    }

    fn is_empty(&self) -> bool {
        self.filter() == DeliveryFilter::default()
    }
}

pub async fn run(pool: &Db, command: DeliveriesCommand, out: Output) -> anyhow::Result<()> {
    match command {
        DeliveriesCommand::List {
            filter,
            limit,
            cursor,
        } => {
            let cursor = cursor.map(|c| Cursor::decode(&c)).transpose()?;
            let (items, next) =
                Delivery::list(pool, &filter.filter(), limit.clamp(1, 500), cursor).await?;
            let next = next.map(|c| c.encode());
            if out.json {
                return print_json(&serde_json::json!({ "items": items, "next_cursor": next }));
            }
            let mut t = table::new(&[
                "id",
                "created",
                "state",
                "event",
                "status",
                "attempts",
                "last code",
                "last error",
                "next attempt",
            ]);
            for d in &items {
                t.add_row(vec![
                    d.id.to_string(),
                    table::time(Some(d.created_at)),
                    d.state.to_string(),
                    d.event_type.clone(),
                    table::opt(d.status_name),
                    format!("{} (series {})", d.attempts, d.series),
                    table::opt(d.last_status_code),
                    table::short(d.last_error.as_deref(), 40),
                    if d.state == DeliveryState::Pending {
                        table::time(Some(d.next_attempt_at))
                    } else {
                        "-".into()
                    },
                ]);
            }
            println!("{t}");
            if let Some(c) = next {
                println!("more: --cursor {c}");
            }
            Ok(())
        }
        DeliveriesCommand::Show { id } => {
            let d = Delivery::get(pool, id).await?;
            if out.json {
                return print_json(&d);
            }
            let x = &d.delivery;
            println!("delivery      {}", x.id);
            println!("notification  {}", x.notification_id);
            println!("partner       {}", x.partner_id);
            println!("endpoint      {}", x.endpoint_id);
            println!("event         {} ({})", x.event_type, x.environment);
            if let Some(p) = x.proposal {
                println!(
                    "proposal      {p}  status {} {}",
                    table::opt(x.status),
                    table::opt(x.status_name)
                );
            }
            println!(
                "state         {}  attempts {}  series {} ({})",
                x.state, x.attempts, x.series, x.trigger
            );
            println!("last error    {}", table::opt(x.last_error.as_deref()));
            let mut t = table::new(&[
                "series", "trigger", "attempt", "started", "ms", "code", "kind", "error",
                "response",
            ]);
            for a in &d.attempt_log {
                t.add_row(vec![
                    a.series.to_string(),
                    a.trigger.to_string(),
                    a.attempt.to_string(),
                    table::time(Some(a.started_at)),
                    a.duration_ms.to_string(),
                    table::opt(a.status_code),
                    table::opt(a.error_kind.as_deref()),
                    table::short(a.error.as_deref(), 50),
                    table::short(a.response_body.as_deref(), 40),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        DeliveriesCommand::Replay { ids, filter } => {
            if !ids.is_empty() && !filter.is_empty() {
                anyhow::bail!("give delivery ids or filters, not both");
            }
            let replayed = if ids.is_empty() {
                let quiet = out.json;
                store::replay_matching(pool, &filter.filter(), Trigger::Operator, |n| {
                    if !quiet {
                        eprintln!("replayed {n} so far…");
                    }
                })
                .await?
            } else {
                for id in &ids {
                    Delivery::replay(pool, *id, Trigger::Operator)
                        .await
                        .map_err(|e| named(e, *id))?;
                }
                ids.len() as u64
            };
            report(out, "replayed", replayed)
        }
        DeliveriesCommand::Cancel { ids } => {
            for id in &ids {
                Delivery::cancel(pool, *id)
                    .await
                    .map_err(|e| named(e, *id))?;
            }
            report(out, "canceled", ids.len() as u64)
        }
    }
}

fn named(e: StoreError, id: Uuid) -> anyhow::Error {
    anyhow::anyhow!("{id}: {e}")
}

fn report(out: Output, what: &str, n: u64) -> anyhow::Result<()> {
    if out.json {
        print_json(&serde_json::json!({ what: n }))
    } else {
        println!("{what} {n} deliveries");
        Ok(())
    }
}
