//! SEMANTICS "Social", through HTTP: follows, privacy on every path, posts,
//! feed, explore, nearby beacons, search, the verified badge; index use on PostgreSQL.

use serde_json::{Value, json};

use crate::support::{self, TestApp, TestUser, error_code};

const FOLLOW: &str = "mutation($u: ID!) { followUser(userId: $u) { id username viewerFollowStatus followersCount } }";
const UNFOLLOW: &str =
    "mutation($u: ID!) { unfollowUser(userId: $u) { id viewerFollowStatus followersCount } }";
const ACCEPT: &str =
    "mutation($u: ID!) { acceptFollowRequest(userId: $u) { id username viewerFollowStatus } }";
const REJECT: &str = "mutation($u: ID!) { rejectFollowRequest(userId: $u) { id username } }";
const REQUESTS: &str = "query($n: Int, $a: String) { followRequests(first: $n, after: $a) { edges { cursor node { username } } pageInfo { hasNextPage endCursor } } }";
const CREATE_POST: &str = "mutation($i: CreatePostInput!) { createPost(input: $i) { id content durationMs isBeacon location { latitude longitude } author { username } createdAt } }";
const PROFILE: &str = "query($n: String!) { user(username: $n) { followersCount followingCount viewerFollowStatus } }";

fn t(u: &TestUser) -> Option<&str> {
    Some(u.token.as_str())
}

/// A well-formed global id of something that does not exist.
fn missing_id(kind: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    URL_SAFE_NO_PAD.encode(format!("{kind}:{}", uuid::Uuid::now_v7().simple()))
}

async fn follow(app: &TestApp, by: &TestUser, target: &TestUser) -> Value {
    app.ok(t(by), FOLLOW, json!({ "u": target.id })).await["followUser"]["viewerFollowStatus"]
        .clone()
}

async fn make_private(app: &TestApp, u: &TestUser) {
    app.ok(
        t(u),
        "mutation { updateProfile(input: { isPrivate: true }) { isPrivate } }",
        json!({}),
    )
    .await;
}

async fn post(app: &TestApp, u: &TestUser, content: &str, beacon: Option<(f64, f64)>) -> String {
    let beacon = beacon.map(|(lat, lon)| json!({ "latitude": lat, "longitude": lon }));
    let data = app
        .ok(
            t(u),
            CREATE_POST,
            json!({ "i": { "content": content, "beacon": beacon } }),
        )
        .await;
    data["createPost"]["id"].as_str().unwrap().to_owned()
}

fn usernames(conn: &Value) -> Vec<String> {
    conn["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["username"].as_str().unwrap().to_owned())
        .collect()
}

fn contents(conn: &Value) -> Vec<String> {
    conn["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["content"].as_str().unwrap().to_owned())
        .collect()
}

async fn counts(app: &TestApp, viewer: Option<&str>, name: &str) -> (i64, i64, Value) {
    let d = app.ok(viewer, PROFILE, json!({ "n": name })).await;
    let u = &d["user"];
    (
        u["followersCount"].as_i64().unwrap(),
        u["followingCount"].as_i64().unwrap(),
        u["viewerFollowStatus"].clone(),
    )
}

#[tokio::test]
async fn follow_rules() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    make_private(&app, &carol).await;

    // Public target: accepted at once; again: nothing changes.
    assert_eq!(follow(&app, &alice, &bob).await, "ACCEPTED");
    assert_eq!(follow(&app, &alice, &bob).await, "ACCEPTED");
    assert_eq!(
        counts(&app, t(&alice), "bob").await,
        (1, 0, json!("ACCEPTED"))
    );
    assert_eq!(
        counts(&app, None, "alice").await,
        (0, 1, Value::Null),
        "anonymous: no viewer status"
    );

    // Private target: pending until accepted; pending does not count.
    assert_eq!(follow(&app, &alice, &carol).await, "PENDING");
    assert_eq!(
        follow(&app, &alice, &carol).await,
        "PENDING",
        "following again changes nothing"
    );
    assert_eq!(follow(&app, &bob, &carol).await, "PENDING");
    assert_eq!(
        counts(&app, t(&alice), "carol").await,
        (0, 0, json!("PENDING"))
    );
    assert_eq!(counts(&app, None, "alice").await, (0, 1, Value::Null));

    // Requests: to the viewer only, oldest first, paged.
    let page1 = app.ok(t(&carol), REQUESTS, json!({ "n": 1 })).await;
    assert_eq!(usernames(&page1["followRequests"]), ["alice"]);
    assert_eq!(page1["followRequests"]["pageInfo"]["hasNextPage"], true);
    let cursor = page1["followRequests"]["pageInfo"]["endCursor"].clone();
    let page2 = app
        .ok(t(&carol), REQUESTS, json!({ "n": 1, "a": cursor }))
        .await;
    assert_eq!(usernames(&page2["followRequests"]), ["bob"]);
    assert_eq!(page2["followRequests"]["pageInfo"]["hasNextPage"], false);
    let none = app.ok(t(&alice), REQUESTS, json!({})).await;
    assert_eq!(usernames(&none["followRequests"]), Vec::<String>::new());
    assert_eq!(
        error_code(&app.gql(None, REQUESTS, json!({})).await),
        "UNAUTHENTICATED"
    );

    // Accept returns the requester; the follow counts now.
    let acc = app.ok(t(&carol), ACCEPT, json!({ "u": alice.id })).await;
    assert_eq!(acc["acceptFollowRequest"]["username"], "alice");
    assert_eq!(
        counts(&app, t(&alice), "carol").await,
        (1, 0, json!("ACCEPTED"))
    );
    // Reject deletes the request: bob may ask again.
    let rej = app.ok(t(&carol), REJECT, json!({ "u": bob.id })).await;
    assert_eq!(rej["rejectFollowRequest"]["username"], "bob");
    assert_eq!(counts(&app, t(&bob), "carol").await, (1, 0, Value::Null));
    assert_eq!(
        usernames(&app.ok(t(&carol), REQUESTS, json!({})).await["followRequests"]),
        Vec::<String>::new()
    );
    assert_eq!(
        error_code(&app.gql(t(&carol), REJECT, json!({ "u": bob.id })).await),
        "NOT_FOUND"
    );
    assert_eq!(
        error_code(&app.gql(t(&carol), ACCEPT, json!({ "u": bob.id })).await),
        "NOT_FOUND"
    );
    assert_eq!(follow(&app, &bob, &carol).await, "PENDING");

    // Unfollow cancels a pending request and ends an accepted follow.
    let un = app.ok(t(&bob), UNFOLLOW, json!({ "u": carol.id })).await;
    assert_eq!(un["unfollowUser"]["viewerFollowStatus"], Value::Null);
    let un = app.ok(t(&alice), UNFOLLOW, json!({ "u": carol.id })).await;
    assert_eq!(un["unfollowUser"]["followersCount"], 0);
    assert_eq!(counts(&app, None, "alice").await, (0, 1, Value::Null));

    // Going public accepts every pending request.
    assert_eq!(follow(&app, &alice, &carol).await, "PENDING");
    assert_eq!(follow(&app, &bob, &carol).await, "PENDING");
    app.ok(
        t(&carol),
        "mutation { updateProfile(input: { isPrivate: false }) { isPrivate } }",
        json!({}),
    )
    .await;
    assert_eq!(
        counts(&app, t(&bob), "carol").await,
        (2, 0, json!("ACCEPTED"))
    );
    assert_eq!(
        usernames(&app.ok(t(&carol), REQUESTS, json!({})).await["followRequests"]),
        Vec::<String>::new()
    );

    // Errors.
    let own = app.gql(t(&alice), FOLLOW, json!({ "u": alice.id })).await;
    assert_eq!(error_code(&own), "BAD_USER_INPUT", "{own}");
    for m in [FOLLOW, UNFOLLOW, ACCEPT, REJECT] {
        assert_eq!(
            error_code(
                &app.gql(t(&alice), m, json!({ "u": missing_id("User") }))
                    .await
            ),
            "NOT_FOUND",
            "{m}"
        );
        assert_eq!(
            error_code(
                &app.gql(t(&alice), m, json!({ "u": missing_id("Post") }))
                    .await
            ),
            "BAD_USER_INPUT",
            "{m}"
        );
        assert_eq!(
            error_code(&app.gql(t(&alice), m, json!({ "u": "garbage" })).await),
            "BAD_USER_INPUT",
            "{m}"
        );
        assert_eq!(
            error_code(&app.gql(None, m, json!({ "u": bob.id })).await),
            "UNAUTHENTICATED",
            "{m}"
        );
    }
}

#[tokio::test]
async fn followers_and_following_lists_page_newest_first() {
    let app = TestApp::spawn().await;
    let star = app.register("star").await;
    let mut fans = Vec::new();
    for i in 0..5 {
        let fan = app.register(&format!("fan{i}")).await;
        follow(&app, &fan, &star).await;
        fans.push(fan);
    }
    let q = "query($a: String, $b: String, $f: Int, $l: Int) { user(username: \"star\") { followers(first: $f, after: $a, last: $l, before: $b) { edges { cursor node { username } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let d = app.ok(None, q, json!({ "f": 2, "a": after })).await;
        let conn = &d["user"]["followers"];
        seen.extend(usernames(conn));
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, ["fan4", "fan3", "fan2", "fan1", "fan0"]);
    let d = app.ok(None, q, json!({ "l": 2 })).await;
    assert_eq!(usernames(&d["user"]["followers"]), ["fan1", "fan0"]);
    assert_eq!(d["user"]["followers"]["pageInfo"]["hasPreviousPage"], true);
    let following = app
        .ok(
            None,
            "{ user(username: \"fan0\") { following { edges { node { username } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(usernames(&following["user"]["following"]), ["star"]);
    let bad = app.gql(None, q, json!({ "a": "nonsense" })).await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
}

#[tokio::test]
async fn post_rules() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let bad_inputs = [
        json!({ "content": "" }),
        json!({ "content": "   \n " }),
        json!({ "content": "x".repeat(4001) }),
        json!({ "content": "nul\u{0}" }),
        json!({ "content": "ok", "durationMs": -1 }),
        json!({ "content": "ok", "beacon": { "latitude": 90.5, "longitude": 0.0 } }),
        json!({ "content": "ok", "beacon": { "latitude": -91, "longitude": 0.0 } }),
        json!({ "content": "ok", "beacon": { "latitude": 0.0, "longitude": 180.01 } }),
        json!({ "content": "ok", "beacon": { "latitude": 0.0, "longitude": -181 } }),
    ];
    for input in bad_inputs {
        let res = app.gql(t(&alice), CREATE_POST, json!({ "i": input })).await;
        assert_eq!(error_code(&res), "BAD_USER_INPUT", "{input}: {res}");
    }
    let res = app
        .gql(None, CREATE_POST, json!({ "i": { "content": "hi" } }))
        .await;
    assert_eq!(error_code(&res), "UNAUTHENTICATED");

    let d = app
        .ok(
            t(&alice),
            CREATE_POST,
            json!({ "i": { "content": "é".repeat(4000), "durationMs": 0 } }),
        )
        .await;
    assert_eq!(d["createPost"]["durationMs"], 0);
    assert_eq!(d["createPost"]["isBeacon"], false);
    assert_eq!(d["createPost"]["location"], Value::Null);
    assert_eq!(d["createPost"]["author"]["username"], "alice");
    let d = app
        .ok(
            t(&alice),
            CREATE_POST,
            json!({ "i": { "content": "<b>raw</b>", "durationMs": 15000 } }),
        )
        .await;
    assert_eq!(
        d["createPost"]["content"], "<b>raw</b>",
        "stored exactly as sent"
    );
    let d = app
        .ok(
            t(&alice),
            CREATE_POST,
            json!({ "i": { "content": "edge", "beacon": { "latitude": -90, "longitude": 180 } } }),
        )
        .await;
    assert_eq!(d["createPost"]["durationMs"], Value::Null);
    assert_eq!(
        d["createPost"]["location"],
        json!({ "latitude": -90.0, "longitude": 180.0 })
    );
    let id = d["createPost"]["id"].clone();

    // node(id) resolves a post; deletePost is the author's alone.
    let node = app
        .ok(
            None,
            "query($id: ID!) { node(id: $id) { id ... on Post { content } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(node["node"]["content"], "edge");
    let del = "mutation($id: ID!) { deletePost(id: $id) }";
    assert_eq!(
        error_code(&app.gql(t(&bob), del, json!({ "id": id })).await),
        "FORBIDDEN"
    );
    assert_eq!(
        error_code(&app.gql(None, del, json!({ "id": id })).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        error_code(&app.gql(t(&alice), del, json!({ "id": alice.id })).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        error_code(
            &app.gql(t(&alice), del, json!({ "id": missing_id("Post") }))
                .await
        ),
        "NOT_FOUND"
    );
    assert_eq!(
        app.ok(t(&alice), del, json!({ "id": id })).await["deletePost"],
        id
    );
    let node = app
        .ok(
            None,
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(node["node"], Value::Null);
    assert_eq!(
        error_code(&app.gql(t(&alice), del, json!({ "id": id })).await),
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn feed_and_explore() {
    let app = TestApp::spawn().await;
    let me = app.register("me_user").await;
    let friend = app.register("friend").await;
    let secret = app.register("secret").await;
    let other = app.register("other").await;
    make_private(&app, &secret).await;
    follow(&app, &me, &friend).await;
    follow(&app, &me, &secret).await; // pending: not in the feed yet
    for i in 0..3 {
        post(&app, &me, &format!("me{i}"), None).await;
        post(&app, &friend, &format!("friend{i}"), None).await;
        post(&app, &secret, &format!("secret{i}"), None).await;
        post(&app, &other, &format!("other{i}"), None).await;
    }
    let feed = "query($n: Int, $a: String) { feed(first: $n, after: $a) { edges { node { content } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let d = app.ok(t(&me), feed, json!({ "n": 4, "a": after })).await;
        seen.extend(contents(&d["feed"]));
        if d["feed"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = d["feed"]["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, ["friend2", "me2", "friend1", "me1", "friend0", "me0"]);
    assert_eq!(
        error_code(&app.gql(None, feed, json!({})).await),
        "UNAUTHENTICATED"
    );

    app.ok(t(&secret), ACCEPT, json!({ "u": me.id })).await;
    let d = app.ok(t(&me), feed, json!({ "n": 3 })).await;
    assert_eq!(contents(&d["feed"]), ["secret2", "friend2", "me2"]);

    let explore = "query($n: Int, $a: String) { explore(first: $n, after: $a) { edges { node { content } } pageInfo { hasNextPage endCursor } } }";
    let d = app.ok(None, explore, json!({ "n": 100 })).await;
    let got = contents(&d["explore"]);
    assert_eq!(got.len(), 9, "{got:?}");
    assert!(got.iter().all(|c| !c.starts_with("secret")), "{got:?}");
    assert_eq!(got[0], "other2");
    let d = app.ok(None, explore, json!({ "n": 8 })).await;
    let cursor = d["explore"]["pageInfo"]["endCursor"].clone();
    let d = app.ok(None, explore, json!({ "n": 8, "a": cursor })).await;
    assert_eq!(contents(&d["explore"]), ["me0"]);
    let wrong_list = app.gql(t(&me), feed, json!({ "a": cursor })).await;
    assert_eq!(
        error_code(&wrong_list),
        "BAD_USER_INPUT",
        "a cursor from another list"
    );
    assert_eq!(
        error_code(&app.gql(None, explore, json!({ "n": 101 })).await),
        "BAD_USER_INPUT"
    );
}

/// The canaries of a private user reach the owner and accepted followers
/// only, on every path; counts stay visible to everyone.
#[tokio::test]
async fn privacy_sweep() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner").await;
    let pal = app.register("pal").await; // whom the owner follows (public)
    let stranger = app.register("stranger").await;
    let pending = app.register("pending").await;
    let rejected = app.register("rejected").await;
    let former = app.register("former").await;
    let accepted = app.register("accepted").await;
    make_private(&app, &owner).await;
    follow(&app, &owner, &pal).await;
    for u in [&pending, &rejected, &former, &accepted] {
        assert_eq!(follow(&app, u, &owner).await, "PENDING");
    }
    app.ok(t(&owner), REJECT, json!({ "u": rejected.id })).await;
    app.ok(t(&owner), ACCEPT, json!({ "u": former.id })).await;
    app.ok(t(&former), UNFOLLOW, json!({ "u": owner.id })).await;
    app.ok(t(&owner), ACCEPT, json!({ "u": accepted.id })).await;
    let (lat, lon) = (48.8566, 2.3522);
    let canary = post(&app, &owner, "CANARY-post", None).await;
    let beacon = post(&app, &owner, "CANARY-beacon", Some((lat, lon))).await;
    // A public beacon beside it, which everyone sees.
    post(&app, &pal, "pal-beacon", Some((lat + 0.001, lon))).await;

    let sweep = "query($id: ID!, $b: ID!, $lat: Float!, $lon: Float!) {
        user(username: \"owner\") {
            followersCount followingCount
            posts(first: 100) { edges { node { content } } }
            followers(first: 100) { edges { node { username } } }
            following(first: 100) { edges { node { username } } }
        }
        post: node(id: $id) { id }
        beacon: node(id: $b) { id }
        explore(first: 100) { edges { node { content } } }
        nearbyBeacons(latitude: $lat, longitude: $lon, radiusMeters: 1000) { edges { node { content } } }
    }";
    let vars = json!({ "id": canary, "b": beacon, "lat": lat, "lon": lon });
    let feed = "{ feed(first: 100) { edges { node { content } } } }";
    let viewers: [(&str, Option<&TestUser>, bool); 7] = [
        ("anonymous", None, false),
        ("stranger", Some(&stranger), false),
        ("pending follower", Some(&pending), false),
        ("rejected requester", Some(&rejected), false),
        ("former follower", Some(&former), false),
        ("accepted follower", Some(&accepted), true),
        ("owner", Some(&owner), true),
    ];
    let mut checks = 0;
    for (who, user, sees) in viewers {
        let d = app
            .ok(user.map(|u| u.token.as_str()), sweep, vars.clone())
            .await;
        let u = &d["user"];
        assert_eq!(
            (u["followersCount"].as_i64(), u["followingCount"].as_i64()),
            (Some(1), Some(1)),
            "{who}: counts"
        );
        let has_canary = |c: &Vec<String>| c.iter().any(|s| s.starts_with("CANARY"));
        // 1. User.posts
        assert_eq!(has_canary(&contents(&u["posts"])), sees, "{who}: posts");
        assert_eq!(
            contents(&u["posts"]).len(),
            if sees { 2 } else { 0 },
            "{who}: posts"
        );
        // 2. node(Post), plain post and beacon
        assert_eq!(!d["post"].is_null(), sees, "{who}: node(post)");
        assert_eq!(!d["beacon"].is_null(), sees, "{who}: node(beacon)");
        // 3. followers, 4. following
        let followers = usernames(&u["followers"]);
        assert_eq!(
            followers,
            if sees {
                vec!["accepted".to_owned()]
            } else {
                vec![]
            },
            "{who}: followers"
        );
        let following = usernames(&u["following"]);
        assert_eq!(
            following,
            if sees { vec!["pal".to_owned()] } else { vec![] },
            "{who}: following"
        );
        // 5. explore: public authors only, whoever asks
        assert!(!has_canary(&contents(&d["explore"])), "{who}: explore");
        assert!(
            contents(&d["explore"]).contains(&"pal-beacon".to_owned()),
            "{who}: explore"
        );
        // 6. nearbyBeacons
        let near = contents(&d["nearbyBeacons"]);
        let want: Vec<String> = if sees {
            vec!["CANARY-beacon".into(), "pal-beacon".into()]
        } else {
            vec!["pal-beacon".into()]
        };
        assert_eq!(near, want, "{who}: nearbyBeacons");
        // 7. feed (needs a viewer)
        let f = app
            .gql(user.map(|u| u.token.as_str()), feed, json!({}))
            .await;
        match user {
            None => assert_eq!(error_code(&f), "UNAUTHENTICATED"),
            Some(_) => assert_eq!(
                has_canary(&contents(&f["data"]["feed"])),
                sees,
                "{who}: feed"
            ),
        }
        checks += 7;
    }
    assert_eq!(checks, 49, "7 paths x 7 viewers");
}

/// A reference geodesic independent of the server's Vincenty: Lambert's
/// formula for the ellipsoid (good to well under 0.1 % at these ranges).
fn lambert(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (a, f) = (6_378_137.0_f64, 1.0 / 298.257_223_563);
    let b1 = ((1.0 - f) * lat1.to_radians().tan()).atan();
    let b2 = ((1.0 - f) * lat2.to_radians().tan()).atan();
    let dl = (lon2 - lon1).to_radians();
    let h = ((b2 - b1) / 2.0).sin().powi(2) + b1.cos() * b2.cos() * (dl / 2.0).sin().powi(2);
    let sigma = 2.0 * h.sqrt().asin();
    if sigma == 0.0 {
        return 0.0;
    }
    let (p, q) = ((b1 + b2) / 2.0, (b2 - b1) / 2.0);
    let x = (sigma - sigma.sin()) * (p.sin() * q.cos()).powi(2) / (sigma / 2.0).cos().powi(2);
    let y = (sigma + sigma.sin()) * (p.cos() * q.sin()).powi(2) / (sigma / 2.0).sin().powi(2);
    a * (sigma - f / 2.0 * (x + y))
}

#[test]
fn server_geodesic_matches_known_values() {
    use confab::service::geo::distance_m;
    // Vincenty's (1975) test line: Flinders Peak to Buninyong, 54,972.271 m.
    let dms = |d: f64, m: f64, s: f64| d.signum() * (d.abs() + m / 60.0 + s / 3600.0);
    let d = distance_m(
        dms(-37.0, 57.0, 3.72030),
        dms(144.0, 25.0, 29.52440),
        dms(-37.0, 39.0, 10.15610),
        dms(143.0, 55.0, 35.38390),
    );
    assert!((d - 54_972.271).abs() < 0.01, "{d}");
    assert!(
        (lambert(-37.950_1, 144.424_9, -37.652_8, 143.926_5)
            / distance_m(-37.950_1, 144.424_9, -37.652_8, 143.926_5)
            - 1.0)
            .abs()
            < 1e-4
    );
    assert_eq!(distance_m(10.0, 20.0, 10.0, 20.0), 0.0);
    // Nearly antipodal points fall back rather than fail.
    assert!((distance_m(0.0, 0.0, 0.5, 179.7) / 19_936_000.0 - 1.0).abs() < 0.01);
}

#[tokio::test]
async fn nearby_beacons_nearest_first_with_geodesic_distances() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let hidden = app.register("hidden").await;
    make_private(&app, &hidden).await;
    let (lat, lon) = (52.52, 13.405);
    let offsets = [
        (0.001, 0.0),
        (0.0, 0.02),
        (0.05, 0.05),
        (-0.1, 0.03),
        (0.2, -0.1),
        (0.0, -0.4),
        (-0.25, -0.2),
        (0.3, 0.0),
    ];
    let mut expected = Vec::new();
    for (i, (dlat, dlon)) in offsets.iter().enumerate() {
        let (plat, plon) = (lat + dlat, lon + dlon);
        let name = format!("b{i}");
        post(&app, &alice, &name, Some((plat, plon))).await;
        let d = lambert(lat, lon, plat, plon);
        if d <= 30_000.0 {
            expected.push((d, name));
        }
    }
    post(&app, &alice, "not a beacon", None).await;
    post(&app, &alice, "far away", Some((48.85, 2.35))).await;
    post(&app, &hidden, "hidden beacon", Some((lat, lon + 0.0005))).await;
    expected.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(expected.len(), 6, "the radius cuts the list: {expected:?}");

    let q = "query($lat: Float!, $lon: Float!, $r: Float!, $n: Int, $a: String) { nearbyBeacons(latitude: $lat, longitude: $lon, radiusMeters: $r, first: $n, after: $a) { edges { cursor distanceMeters node { content isBeacon } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let mut got = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let d = app
            .ok(
                None,
                q,
                json!({ "lat": lat, "lon": lon, "r": 30_000.0, "n": 4, "a": after }),
            )
            .await;
        let conn = &d["nearbyBeacons"];
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], pages > 0);
        for e in conn["edges"].as_array().unwrap() {
            got.push((
                e["distanceMeters"].as_f64().unwrap(),
                e["node"]["content"].as_str().unwrap().to_owned(),
            ));
        }
        pages += 1;
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 2);
    let names = |v: &[(f64, String)]| v.iter().map(|x| x.1.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&expected), "same posts, nearest first");
    for ((d, name), (want, _)) in got.iter().zip(&expected) {
        assert!(
            (d / want - 1.0).abs() < 0.005,
            "{name}: {d} vs reference {want}"
        );
    }
    // The private user's beacon shows to their own eyes only.
    let d = app
        .ok(t(&hidden), q, json!({ "lat": lat, "lon": lon, "r": 200.0 }))
        .await;
    assert_eq!(contents(&d["nearbyBeacons"]), ["hidden beacon", "b0"]);

    // Across the antimeridian.
    post(&app, &alice, "east", Some((0.0, 179.99))).await;
    post(&app, &alice, "west", Some((0.0, -179.99))).await;
    let d = app
        .ok(None, q, json!({ "lat": 0.0, "lon": 179.999, "r": 5000.0 }))
        .await;
    assert_eq!(contents(&d["nearbyBeacons"]), ["east", "west"]);

    for r in [0.0, -5.0, 50_000.001] {
        let res = app
            .gql(None, q, json!({ "lat": lat, "lon": lon, "r": r }))
            .await;
        assert_eq!(error_code(&res), "BAD_USER_INPUT", "radius {r}");
    }
    app.ok(None, q, json!({ "lat": lat, "lon": lon, "r": 50_000.0 }))
        .await;
    let res = app
        .gql(None, q, json!({ "lat": 91.0, "lon": lon, "r": 10.0 }))
        .await;
    assert_eq!(error_code(&res), "BAD_USER_INPUT");
    let res = app
        .gql(
            None,
            q,
            json!({ "lat": lat, "lon": lon, "r": 10.0, "a": "bad" }),
        )
        .await;
    assert_eq!(error_code(&res), "BAD_USER_INPUT");
}

#[tokio::test]
async fn search_users_by_prefix() {
    let app = TestApp::spawn().await;
    for (name, display) in [
        ("Anna", None),
        ("annabel", None),
        ("bob", Some("Anne Bonny")),
        ("carl", Some("ANNIKA")),
        ("a_b", None),
        ("axb", None),
        ("dave", Some("100% real")),
    ] {
        let vars = json!({ "i": { "username": name, "email": format!("{name}@example.com"), "password": "correct horse", "displayName": display } });
        app.ok(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            vars,
        )
        .await;
    }
    let q = "query($q: String!, $n: Int, $a: String) { searchUsers(query: $q, first: $n, after: $a) { edges { node { username } } pageInfo { hasNextPage endCursor } } }";
    let app = &app;
    let search = |text: &'static str| async move {
        let d = app.ok(None, q, json!({ "q": text })).await;
        usernames(&d["searchUsers"])
    };
    assert_eq!(
        search("ANN").await,
        ["Anna", "annabel", "bob", "carl"],
        "username or display name, ordered by username"
    );
    assert_eq!(search("anna").await, ["Anna", "annabel"]);
    assert_eq!(search("a_").await, ["a_b"], "_ is literal");
    assert_eq!(search("100%").await, ["dave"], "% is literal");
    assert_eq!(search("%").await, Vec::<String>::new());
    assert_eq!(search("\\").await, Vec::<String>::new());
    assert_eq!(search("zz").await, Vec::<String>::new());
    let d = app.ok(None, q, json!({ "q": "an", "n": 2 })).await;
    assert_eq!(usernames(&d["searchUsers"]), ["Anna", "annabel"]);
    let cursor = d["searchUsers"]["pageInfo"]["endCursor"].clone();
    let d = app
        .ok(None, q, json!({ "q": "an", "n": 2, "a": cursor }))
        .await;
    assert_eq!(usernames(&d["searchUsers"]), ["bob", "carl"]);
    assert_eq!(d["searchUsers"]["pageInfo"]["hasNextPage"], false);
    for text in ["", "   "] {
        assert_eq!(
            error_code(&app.gql(None, q, json!({ "q": text })).await),
            "BAD_USER_INPUT"
        );
    }
}

#[tokio::test]
async fn verified_badge_changes_only_through_the_admin_cli() {
    let app = TestApp::spawn().await;
    let dora = app.register("dora").await;
    let badge = || async {
        app.ok(
            None,
            "{ user(username: \"dora\") { isOfficial } }",
            json!({}),
        )
        .await["user"]["isOfficial"]
            .clone()
    };
    assert_eq!(badge().await, false);
    // No API path sets it.
    let res = app
        .gql(
            t(&dora),
            "mutation { updateProfile(input: { isOfficial: true }) { isOfficial } }",
            json!({}),
        )
        .await;
    assert!(res["errors"].is_array(), "{res}");
    let data_dir = tempfile::tempdir().unwrap();
    let run = |action: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(["admin", action, "DORA"])
            .env("DATABASE_URL", &app.db.url)
            .env("CONFAB_DATA_DIR", data_dir.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "confab admin {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("verify");
    assert_eq!(badge().await, true);
    run("unverify");
    assert_eq!(badge().await, false);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["admin", "verify", "nobody_here"])
        .env("DATABASE_URL", &app.db.url)
        .env("CONFAB_DATA_DIR", data_dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown user fails");
}

/// PostgreSQL only: the statements the services run use their indexes.
#[tokio::test]
async fn hot_queries_use_their_indexes() {
    use confab::service::{page::Page, posts, users};
    use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement, TransactionTrait};
    if !support::is_postgres() {
        eprintln!("skipped: EXPLAIN checks run on PostgreSQL only");
        return;
    }
    let app = TestApp::spawn().await;
    let viewer = app.register("viewer").await;
    let db = &app.app.state.db;
    let viewer_id: uuid::Uuid = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT id FROM users WHERE username = '{}'",
                viewer.username
            ),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "id")
        .unwrap();
    for sql in [
        "INSERT INTO users (id, username, display_name, email, password_hash, is_private, is_official, created_at, updated_at) \
         SELECT gen_random_uuid(), 'seed' || g, 'Seed ' || g, 'seed' || g || '@example.com', 'x', g % 5 = 0, false, now(), now() \
         FROM generate_series(1, 3000) g",
        "INSERT INTO posts (id, author_id, content, is_beacon, latitude, longitude, created_at) \
         SELECT gen_random_uuid(), u.id, 'p', g % 2 = 0, \
                CASE WHEN g % 2 = 0 THEN -60 + random() * 120 END, CASE WHEN g % 2 = 0 THEN -170 + random() * 340 END, \
                now() - random() * interval '300 days' \
         FROM users u, generate_series(1, 10) g",
        &format!(
            "INSERT INTO follows (follower_id, following_id, status, created_at) \
             SELECT '{viewer_id}', id, 'accepted', now() FROM users WHERE username LIKE 'seed1%'"
        ),
        "ANALYZE",
    ] {
        db.execute_unprepared(sql).await.unwrap();
    }
    let plan = |stmt: Statement| async move {
        let txn = db.begin().await.unwrap();
        txn.execute_unprepared("SET LOCAL enable_seqscan = off")
            .await
            .unwrap();
        let explain = Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("EXPLAIN {}", stmt.sql),
            stmt.values.unwrap_or(sea_orm::Values(Vec::new())),
        );
        let rows = txn.query_all_raw(explain).await.unwrap();
        txn.rollback().await.unwrap();
        rows.iter()
            .map(|r| r.try_get::<String>("", "QUERY PLAN").unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let page = Page::first(21);
    let cases: Vec<(&str, Statement, Vec<&str>)> = vec![
        (
            "feed",
            posts::feed_query(viewer_id, &page).build(DbBackend::Postgres),
            vec!["posts_", "follows_"],
        ),
        (
            "explore",
            posts::explore_query(&page).build(DbBackend::Postgres),
            vec!["posts_created_id_idx"],
        ),
        (
            "nearbyBeacons",
            posts::nearby_query_postgres(
                Some(viewer_id),
                posts::Around::new(10.0, 10.0, 50_000.0).unwrap(),
                &Page::first(21),
            )
            .build(DbBackend::Postgres),
            vec!["posts_location_gist_idx"],
        ),
        (
            "searchUsers",
            users::search_query("seed12", &Page::first(21))
                .unwrap()
                .build(DbBackend::Postgres),
            vec!["users_username_prefix_idx", "users_display_name_prefix_idx"],
        ),
    ];
    for (name, stmt, wanted) in cases {
        let text = plan(stmt).await;
        let indexes: Vec<&str> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| w.ends_with("_idx") || w.ends_with("_pkey") || w.ends_with("_key"))
            .collect();
        eprintln!("{name}: indexes {indexes:?}\n{text}\n");
        for w in wanted {
            assert!(text.contains(w), "{name} plan lacks {w}:\n{text}");
        }
        assert!(
            !text.contains("Seq Scan"),
            "{name} scans sequentially:\n{text}"
        );
    }
}

/// Rejecting is for pending requests only: an accepted follower cannot be
/// "rejected" away (NOT_FOUND, and the follow and its count stay).
#[tokio::test]
async fn rejecting_an_accepted_follower_is_not_found_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    assert_eq!(follow(&app, &bob, &alice).await, "ACCEPTED");
    let v = app.gql(t(&alice), REJECT, json!({ "u": bob.id })).await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    let me = app
        .ok(t(&alice), "{ me { followersCount } }", json!({}))
        .await;
    assert_eq!(me["me"]["followersCount"], 1);
    let status = app
        .ok(
            t(&bob),
            "query($n: String!) { user(username: $n) { viewerFollowStatus } }",
            json!({ "n": "alice" }),
        )
        .await;
    assert_eq!(status["user"]["viewerFollowStatus"], "ACCEPTED");
}
