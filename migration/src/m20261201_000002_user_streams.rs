//! Commit order as data for direct messages. Each user gets a stream of the
//! direct messages they send or receive: `users.dm_seq` is its head, taken
//! for both parties under their row locks (in id order, so two opposite
//! sends cannot deadlock) inside the sending transaction. A message carries
//! its position in both streams, and `thread_seq`, its position in the
//! stream of the thread's lower-id party: both locks are held for every send
//! of a thread, so that position is the thread's commit order. Read marks
//! become positions in the reader's own stream. Existing messages are
//! numbered in their (created_at, id) order.

use sea_orm_migration::prelude::*;

use crate::{exec_all, is_postgres};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000002_user_streams"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    DmSeq,
}

#[derive(DeriveIden)]
enum DirectMessages {
    Table,
    SenderId,
    ReceiverId,
    SenderSeq,
    ReceiverSeq,
    ThreadSeq,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    LastReadSeq,
}

fn position(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

/// The columns this migration adds, each (table, column).
fn added_columns() -> [(DynIden, DynIden); 5] {
    [
        (Users::Table.into_iden(), Users::DmSeq.into_iden()),
        (
            DirectMessages::Table.into_iden(),
            DirectMessages::SenderSeq.into_iden(),
        ),
        (
            DirectMessages::Table.into_iden(),
            DirectMessages::ReceiverSeq.into_iden(),
        ),
        (
            DirectMessages::Table.into_iden(),
            DirectMessages::ThreadSeq.into_iden(),
        ),
        (
            Conversations::Table.into_iden(),
            Conversations::LastReadSeq.into_iden(),
        ),
    ]
}

/// Every direct message once per party, numbered per party in (created_at, id) order.
const NUMBERED: &str = "(SELECT id, user_id, row_number() OVER (PARTITION BY user_id ORDER BY \
     created_at, id) AS n FROM (SELECT id, sender_id AS user_id, created_at FROM direct_messages \
     UNION ALL SELECT id, receiver_id AS user_id, created_at FROM direct_messages) AS stream) AS numbered";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = added_columns();
        for (table, column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(position(column))
                        .to_owned(),
                )
                .await?;
        }
        let sender = format!(
            "UPDATE direct_messages SET sender_seq = numbered.n FROM {NUMBERED} \
             WHERE direct_messages.id = numbered.id AND numbered.user_id = direct_messages.sender_id"
        );
        let receiver = format!(
            "UPDATE direct_messages SET receiver_seq = numbered.n FROM {NUMBERED} \
             WHERE direct_messages.id = numbered.id AND numbered.user_id = direct_messages.receiver_id"
        );
        exec_all(
            manager,
            &[
                &sender,
                &receiver,
                "UPDATE direct_messages SET thread_seq = CASE WHEN sender_id < receiver_id \
                 THEN sender_seq ELSE receiver_seq END",
                "UPDATE users SET dm_seq = COALESCE((SELECT MAX(CASE WHEN dm.sender_id = users.id \
                 THEN dm.sender_seq ELSE dm.receiver_seq END) FROM direct_messages dm \
                 WHERE dm.sender_id = users.id OR dm.receiver_id = users.id), 0)",
                "UPDATE conversations SET last_read_seq = COALESCE((SELECT MAX(CASE WHEN \
                 dm.sender_id = conversations.user_id THEN dm.sender_seq ELSE dm.receiver_seq END) \
                 FROM direct_messages dm WHERE (dm.sender_id = conversations.user_id OR \
                 dm.receiver_id = conversations.user_id) AND dm.created_at <= conversations.last_read_at), 0)",
            ],
        )
        .await?;
        // Each party's stream, read by position.
        for (name, user, seq) in [
            (
                "direct_messages_sender_seq_idx",
                DirectMessages::SenderId,
                DirectMessages::SenderSeq,
            ),
            (
                "direct_messages_receiver_seq_idx",
                DirectMessages::ReceiverId,
                DirectMessages::ReceiverSeq,
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(DirectMessages::Table)
                        .col(user)
                        .col(seq)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        // A thread by position, in the expressions the queries use (see service/direct.rs).
        let thread_index = if is_postgres(manager) {
            "CREATE INDEX direct_messages_thread_seq_idx ON direct_messages \
             (LEAST(sender_id, receiver_id), GREATEST(sender_id, receiver_id), thread_seq)"
        } else {
            "CREATE INDEX direct_messages_thread_seq_idx ON direct_messages \
             (min(sender_id, receiver_id), max(sender_id, receiver_id), thread_seq)"
        };
        exec_all(
            manager,
            &[thread_index, "DROP INDEX direct_messages_thread_idx"],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let thread_index = if is_postgres(manager) {
            "CREATE INDEX direct_messages_thread_idx ON direct_messages \
             (LEAST(sender_id, receiver_id), GREATEST(sender_id, receiver_id), created_at DESC, id DESC)"
        } else {
            "CREATE INDEX direct_messages_thread_idx ON direct_messages \
             (min(sender_id, receiver_id), max(sender_id, receiver_id), created_at DESC, id DESC)"
        };
        exec_all(
            manager,
            &[
                thread_index,
                "DROP INDEX direct_messages_thread_seq_idx",
                "DROP INDEX direct_messages_sender_seq_idx",
                "DROP INDEX direct_messages_receiver_seq_idx",
            ],
        )
        .await?;
        let columns = added_columns();
        for (table, column) in columns {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
