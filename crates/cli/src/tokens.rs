//! `vouch token`: issue, list and revoke operators' API tokens from the server's host.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use vouch_control::tokens as auth;
use vouch_store::{Change, Store};
use vouch_types::{Clock, OperatorName, Reason, Role, SystemClock, TokenId};

use crate::output::{self, Output, cell};

/// Token commands.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a token; it is printed this once. Its holder may enroll a second factor for 24 hours (whoever
    /// runs this on the server's host vouches for them).
    Create {
        /// Who the token is for.
        #[arg(long)]
        operator: String,
        /// admin, operator or auditor.
        #[arg(long)]
        role: String,
        /// Make it expire after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Why, for the event log.
        #[arg(long)]
        reason: Option<String>,
        /// Do not allow its holder to enroll a second factor (an administrator can allow it later).
        #[arg(long)]
        no_mfa_enrollment: bool,
    },
    /// Unlock a token's second factor after wrong codes, and let its holder enroll a new one for 24 hours.
    MfaReset {
        /// The token's id (the 16 hex digits after `vouch_`).
        id: String,
        /// Why, for the event log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token's id (the 16 hex digits after `vouch_`).
        id: String,
        /// Why, for the event log.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Runs a token command against `store`.
pub async fn run(cmd: TokenCommand, store: &dyn Store, out: Output) -> Result<()> {
    let clock = SystemClock;
    match cmd {
        TokenCommand::Create {
            operator,
            role,
            expires_in_days,
            reason,
            no_mfa_enrollment,
        } => {
            let operator: OperatorName = operator.try_into()?;
            let role: Role = role.parse()?;
            let expires = match expires_in_days {
                Some(0) => bail!("--expires-in-days must be at least 1"),
                Some(d) => Some(clock.now().plus_micros(i64::from(d) * 86_400_000_000)),
                None => None,
            };
            let reason = reason.map(Reason::try_from).transpose()?;
            let (record, secret) = auth::issue(
                store,
                &clock,
                crate::cli_actor(),
                operator,
                role,
                expires,
                reason,
            )
            .await?;
            if !no_mfa_enrollment {
                vouch_control::mfa::allow_enrollment(
                    store,
                    &clock,
                    record.id,
                    crate::cli_actor(),
                    None,
                )
                .await?;
            }
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "id": record.id, "operator": record.operator, "role": record.role,
                    "expires_at": record.expires_at, "token": secret.expose(),
                }))?,
                Output::Table => {
                    println!(
                        "token for {} ({}), shown only this once:\n\n    {}\n",
                        record.operator,
                        record.role,
                        secret.expose()
                    )
                }
            }
        }
        TokenCommand::List => {
            let tokens = store.list_tokens().await?;
            match out {
                Output::Json => output::json(
                    &tokens
                        .iter()
                        .map(|t| {
                            serde_json::json!({
                                "id": t.id, "operator": t.operator, "role": t.role, "created_at": t.created_at,
                                "expires_at": t.expires_at, "revoked_at": t.revoked_at,
                            })
                        })
                        .collect::<Vec<_>>(),
                )?,
                Output::Table => output::table(
                    &["ID", "OPERATOR", "ROLE", "CREATED", "EXPIRES", "REVOKED"],
                    &tokens
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.to_string(),
                                t.operator.to_string(),
                                t.role.to_string(),
                                t.created_at.to_string(),
                                cell(t.expires_at),
                                cell(t.revoked_at),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        TokenCommand::MfaReset { id, reason } => {
            let id: TokenId = id
                .parse()
                .context("the token id is the 16 hex digits after `vouch_`")?;
            let reason = reason.map(Reason::try_from).transpose()?;
            let until =
                vouch_control::mfa::allow_enrollment(store, &clock, id, crate::cli_actor(), reason)
                    .await?;
            println!(
                "token {id}: second factor unlocked; its holder may enroll a new one until {until}"
            );
        }
        TokenCommand::Revoke { id, reason } => {
            let id: TokenId = id
                .parse()
                .context("the token id is the 16 hex digits after `vouch_`")?;
            let reason = reason.map(Reason::try_from).transpose()?;
            let t = store
                .revoke_token(
                    id,
                    Change {
                        actor: crate::cli_actor(),
                        reason,
                        at: clock.now(),
                    },
                )
                .await?;
            println!(
                "token {} ({}) revoked at {}",
                t.id,
                t.operator,
                cell(t.revoked_at)
            );
        }
    }
    Ok(())
}
