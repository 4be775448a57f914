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
