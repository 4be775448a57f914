//! Every migration goes up, down to nothing, and up again.

use migration::{Migrator, MigratorTrait};

use crate::support::TestDb;

#[tokio::test]
async fn migrations_go_up_down_and_up_again() {
    let db = TestDb::new().await;
    let conn = confab::db::connect(&db.url).await.unwrap();
    confab::db::migrate(&conn).await.unwrap();
    let all = Migrator::migrations().len();
    assert_eq!(
        Migrator::get_applied_migrations(&conn).await.unwrap().len(),
        all
    );
    Migrator::down(&conn, None).await.unwrap();
    assert!(
        Migrator::get_applied_migrations(&conn)
            .await
            .unwrap()
            .is_empty()
    );
    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(
        Migrator::get_applied_migrations(&conn).await.unwrap().len(),
        all
    );
    assert!(confab::db::ready(&conn).await);
}

/// Rows written before the stream migrations get positions in their
/// (created_at, id) order; read marks and heads are carried over, and the
/// next write takes the next position.
#[tokio::test]
async fn stream_migrations_number_existing_rows_in_their_order() {
    use chrono::{Duration, Utc};
    use sea_orm::{
        ConnectionTrait,
        sea_query::{Alias, Query},
    };
    let db = TestDb::new().await;
    let conn = confab::db::connect(&db.url).await.unwrap();
    // Everything before m20261201_000001_room_streams (a PostgreSQL test
    // database comes migrated from its template: start from nothing).
    Migrator::reset(&conn).await.unwrap();
    Migrator::up(&conn, Some(4)).await.unwrap();
    let insert = |table: &str, columns: &[&str], values: Vec<sea_orm::Value>| {
        Query::insert()
            .into_table(Alias::new(table))
            .columns(columns.iter().map(|c| Alias::new(*c)))
            .values_panic(values.into_iter().map(Into::into))
            .to_owned()
    };
    let t0 = Utc::now() - Duration::hours(1);
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let (alice, bob) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    for (id, name) in [(alice, "alice"), (bob, "bob")] {
        let stmt = insert(
            "users",
            &[
                "id",
                "username",
                "email",
                "password_hash",
                "is_private",
                "is_official",
                "created_at",
                "updated_at",
            ],
            vec![
                id.into(),
                name.into(),
                format!("{name}@example.com").into(),
                "x".into(),
                false.into(),
                false.into(),
                t0.into(),
                t0.into(),
            ],
        );
        conn.execute(&stmt).await.unwrap();
    }
    let room = uuid::Uuid::now_v7();
    let stmt = insert(
        "rooms",
        &["id", "name", "created_by", "created_at", "updated_at"],
        vec![
            room.into(),
            "old".into(),
            alice.into(),
            t0.into(),
            t0.into(),
        ],
    );
    conn.execute(&stmt).await.unwrap();
    // Bob has read up to minute 2.
    for (user, read) in [(alice, at(9)), (bob, at(2))] {
        let stmt = insert(
            "room_members",
            &["room_id", "user_id", "joined_at", "last_read_at"],
            vec![room.into(), user.into(), t0.into(), read.into()],
        );
        conn.execute(&stmt).await.unwrap();
    }
    // Messages inserted out of time order: positions must follow time.
    for (minute, content) in [(3, "third"), (1, "first"), (2, "second")] {
        let stmt = insert(
            "messages",
            &["id", "room_id", "sender_id", "content", "created_at"],
            vec![
                uuid::Uuid::now_v7().into(),
                room.into(),
                alice.into(),
                content.into(),
                at(minute).into(),
            ],
        );
        conn.execute(&stmt).await.unwrap();
    }
    for (minute, from, to, content) in [(5, bob, alice, "dm-b"), (4, alice, bob, "dm-a")] {
        let stmt = insert(
            "direct_messages",
            &["id", "sender_id", "receiver_id", "content", "created_at"],
            vec![
                uuid::Uuid::now_v7().into(),
                from.into(),
                to.into(),
                content.into(),
                at(minute).into(),
            ],
        );
        conn.execute(&stmt).await.unwrap();
    }
    Migrator::up(&conn, None).await.unwrap();

    use entity::{direct_message, message, room as rooms, room_member, user};
    use sea_orm::{EntityTrait, QueryOrder};
    let messages = message::Entity::find()
        .order_by_asc(message::Column::Seq)
        .all(&conn)
        .await
        .unwrap();
    let order: Vec<(&str, i64)> = messages
        .iter()
        .map(|m| (m.content.as_str(), m.seq))
        .collect();
    assert_eq!(order, [("first", 1), ("second", 2), ("third", 3)]);
    let head = rooms::Entity::find_by_id(room)
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.last_seq, 3);
    let bob_mark = room_member::Entity::find_by_id((room, bob))
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob_mark.last_read_seq, 2, "bob read through `second`");
    let dms = direct_message::Entity::find()
        .order_by_asc(direct_message::Column::CreatedAt)
        .all(&conn)
        .await
        .unwrap();
    let seqs: Vec<(&str, i64, i64)> = dms
        .iter()
        .map(|d| (d.content.as_str(), d.sender_seq, d.receiver_seq))
        .collect();
    assert_eq!(seqs, [("dm-a", 1, 1), ("dm-b", 2, 2)]);
    for d in &dms {
        let lower = if d.sender_id < d.receiver_id {
            d.sender_seq
        } else {
            d.receiver_seq
        };
        assert_eq!(
            d.thread_seq, lower,
            "a thread is ordered by its lower-id party's stream"
        );
    }
    for id in [alice, bob] {
        let u = user::Entity::find_by_id(id)
            .one(&conn)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.dm_seq, 2);
    }
}
