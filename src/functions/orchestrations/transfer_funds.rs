//! `Account` entities and `TransferFunds`, which moves money between two of them inside a
//! critical section.
//!
//! Deposit with `POST /api/orchestrators/entities/Account/{key}?op=deposit` and an amount as the
//! body; read with `GET /api/orchestrators/entities/Account/{key}`; transfer with
//! `POST /api/orchestrators/TransferFunds` and `{"from": "alice", "to": "bob", "amount": 30}`.

use azfn::durable::{EntityId, EntityOp, OrchestrationContext, TaskError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Applies one operation to an account's balance: `deposit` and `withdraw` take a positive
/// amount (a withdrawal beyond the balance is refused), `balance` answers it.
pub fn account(balance: &mut i64, op: &EntityOp) -> Result<Value, String> {
    let amount = || -> Result<i64, String> {
        let amount: i64 = op.input()?;
        if amount <= 0 {
            return Err(format!("`{}` on {} needs a positive amount, not {amount}", op.name, op.entity));
        }
        Ok(amount)
    };
    match op.name.as_str() {
        "deposit" => {
            *balance = balance.checked_add(amount()?).ok_or("the balance would overflow")?;
            Ok(json!(*balance))
        }
        "withdraw" => {
            let amount = amount()?;
            if amount > *balance {
                return Err(format!("{} holds {balance}, less than the {amount} asked for", op.entity));
            }
            *balance -= amount;
            Ok(json!(*balance))
        }
        "balance" => Ok(json!(*balance)),
        other => Err(format!("Account has no operation `{other}` (deposit, withdraw, balance, delete)")),
    }
}

/// `TransferFunds`' input: account keys and a positive amount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transfer {
    /// The account the money leaves.
    pub from: String,
    /// The account it goes to.
    pub to: String,
    /// How much.
    pub amount: i64,
}

/// `TransferFunds`: locks both accounts, refuses an overdraft, and moves the amount. Nobody else
/// sees or changes either balance between the check and the move; if the host dies part-way, the
/// orchestration resumes from its history and finishes the move (each operation applies once).
///
/// Answers `{"status": "transferred", "from": <new balance>, "to": <new balance>}` or
/// `{"status": "refused", "reason": ...}`.
pub async fn transfer_funds(ctx: OrchestrationContext, input: Transfer) -> Result<Value, TaskError> {
    if input.amount <= 0 {
        return Err(TaskError::new(format!("the amount must be positive, not {}", input.amount)));
    }
    if input.from == input.to {
        return Err(TaskError::new(format!("`from` and `to` are both account {}", input.from)));
    }
    let from = EntityId::new("Account", &input.from);
    let to = EntityId::new("Account", &input.to);
    let section = ctx.lock_entities(&[from.clone(), to.clone()]).await?;
    let balance: i64 = ctx.call_entity(&from, "balance", ()).await?;
    if balance < input.amount {
        return Ok(json!({
            "status": "refused",
            "reason": format!("account {} holds {balance}, less than {}", input.from, input.amount),
        }));
    }
    let from_balance: i64 = ctx.call_entity(&from, "withdraw", input.amount).await?;
    let to_balance: i64 = ctx.call_entity(&to, "deposit", input.amount).await?;
    section.release();
    Ok(json!({"status": "transferred", "from": from_balance, "to": to_balance}))
}
