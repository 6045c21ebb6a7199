use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn leftover_temp_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".rb6-"))
        .collect()
}

#[test]
fn write_new_file_then_restore_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.conf");
    let change = write_file(&path, b"port = 80\n", Some(0o640), None).unwrap();

    assert_eq!(fs::read(&path).unwrap(), b"port = 80\n", "content");
    assert_eq!(mode_of(&path), 0o640, "mode");
    assert_eq!(change.before, Before::Absent, "before state");
    assert_eq!(
        change.after_sha256,
        Some(sha256_hex(b"port = 80\n")),
        "after hash"
    );
    assert_eq!(
        current_sha256(&path).unwrap(),
        change.after_sha256,
        "current hash matches after hash"
    );
    assert!(
        leftover_temp_files(dir.path()).is_empty(),
        "temporary file left behind"
    );

    restore(&change).unwrap();
    assert!(
        !path.exists(),
        "restore should remove a file that did not exist"
    );
    assert_eq!(
        current_sha256(&path).unwrap(),
        None,
        "hash of a missing file"
    );
}

#[test]
fn overwrite_then_restore_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    let original: Vec<u8> = (0u8..=255)
        .chain(b"\r\nno final newline".iter().copied())
        .collect();
    fs::write(&path, &original).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o604)).unwrap();

    let change = write_file(&path, b"replaced\n", Some(0o600), None).unwrap();
    assert_eq!(mode_of(&path), 0o600, "mode after write");
    assert!(
        matches!(&change.before, Before::File(s) if s.content == original),
        "snapshot content"
    );

    restore(&change).unwrap();
    assert_eq!(fs::read(&path).unwrap(), original, "restored content");
    assert_eq!(mode_of(&path), 0o604, "restored mode");
}

#[test]
fn write_without_mode_keeps_existing_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.sh");
    fs::write(&path, "old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    write_file(&path, b"new", None, None).unwrap();

    assert_eq!(mode_of(&path), 0o755, "mode should be kept");
}

#[test]
fn write_follows_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("real.conf");
    let link = dir.path().join("link.conf");
    fs::write(&target, "old").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let change = write_file(&link, b"new", None, None).unwrap();

    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "link was replaced by a file"
    );
    assert_eq!(fs::read(&target).unwrap(), b"new", "target content");
    assert_eq!(
        change.path,
        target.canonicalize().unwrap(),
        "change records the resolved path"
    );
}

#[test]
fn write_sets_and_restores_owner() {
    if !is_root() {
        eprintln!("skipped: changing owners needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("owned");
    fs::write(&path, "x").unwrap();
    let owner = Owner {
        user: Some(Principal::Id(12345)),
        group: Some(Principal::parse("54321")),
    };
    let change = write_file(&path, b"y", None, Some(&owner)).unwrap();
    let meta = fs::metadata(&path).unwrap();

    assert_eq!(
        (meta.uid(), meta.gid()),
        (12345, 54321),
        "owner after write"
    );
    restore(&change).unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "owner after restore");
}

#[test]
fn owner_names_are_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let root = Owner {
        user: Some(Principal::Name("root".into())),
        group: Some(Principal::Name("root".into())),
    };
    let unknown_user = Owner {
        user: Some(Principal::Name("no-such-user-rb6".into())),
        group: None,
    };
    let unknown_group = Owner {
        user: None,
        group: Some(Principal::Name("no-such-group-rb6".into())),
    };

    if is_root() {
        write_file(&path, b"x", None, Some(&root)).expect("root:root should resolve");
    }
    let user_error = write_file(&path, b"x", None, Some(&unknown_user));
    let group_error = write_file(&path, b"x", None, Some(&unknown_group));
    assert!(
        matches!(user_error, Err(FileError::UserNotFound(_))),
        "unknown user: {user_error:?}"
    );
    assert!(
        matches!(group_error, Err(FileError::GroupNotFound(_))),
        "unknown group: {group_error:?}"
    );
}

#[test]
fn write_onto_directory_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let result = write_file(dir.path(), b"x", None, None);

    assert!(
        matches!(result, Err(FileError::WrongType { .. })),
        "got {result:?}"
    );
}

#[test]
fn copy_uses_source_mode_for_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.sh");
    let dst = dir.path().join("dst.sh");
    fs::write(&src, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o750)).unwrap();
    let change = copy_file(&src, &dst, None, None).unwrap();

    assert_eq!(fs::read(&dst).unwrap(), b"#!/bin/sh\n", "copied content");
    assert_eq!(mode_of(&dst), 0o750, "copied mode");
    assert_eq!(change.before, Before::Absent, "before state");
}

#[test]
fn create_dir_records_and_undoes_parents() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a/b/c");
    let change = create_dir(&target, Some(0o750), None).unwrap();

    assert!(target.is_dir(), "directory not created");
    assert_eq!(mode_of(&target), 0o750, "mode of the target");
    let expected = vec![dir.path().join("a"), dir.path().join("a/b"), target.clone()];
    assert_eq!(
        change.before,
        Before::Directory {
            created: expected,
            existing: None
        },
        "created list"
    );

    restore(&change).unwrap();
    assert!(
        !dir.path().join("a").exists(),
        "created parents not removed"
    );
    assert!(dir.path().exists(), "pre-existing parent removed");
}

#[test]
fn create_dir_undo_keeps_new_content() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data");
    let change = create_dir(&target, None, None).unwrap();
    fs::write(target.join("added-later"), "keep me").unwrap();
    let result = restore(&change);

    assert!(
        matches!(result, Err(FileError::RestoreConflict { .. })),
        "got {result:?}"
    );
    assert!(
        target.join("added-later").exists(),
        "undo deleted a file it did not create"
    );
}

#[test]
fn create_existing_dir_restores_mode() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("existing");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
    let change = create_dir(&target, Some(0o700), None).unwrap();

    assert_eq!(mode_of(&target), 0o700, "mode after create_dir");
    restore(&change).unwrap();
    assert!(target.is_dir(), "existing directory removed by undo");
    assert_eq!(mode_of(&target), 0o755, "mode after restore");
}

#[test]
fn remove_dir_then_restore_rebuilds_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("site");
    fs::create_dir_all(root.join("static/css")).unwrap();
    fs::write(root.join("index.html"), "<h1>hi</h1>").unwrap();
    fs::write(root.join("static/css/site.css"), [0u8, 159, 146, 150]).unwrap();
    fs::set_permissions(root.join("index.html"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("index.html", root.join("home.html")).unwrap();
    fs::set_permissions(root.join("static"), fs::Permissions::from_mode(0o555)).unwrap();
    let change = remove_dir(&root).unwrap();

    assert!(!root.exists(), "directory not removed");
    restore(&change).unwrap();
    assert_eq!(
        fs::read(root.join("index.html")).unwrap(),
        b"<h1>hi</h1>",
        "file content"
    );
    assert_eq!(
        fs::read(root.join("static/css/site.css")).unwrap(),
        [0u8, 159, 146, 150],
        "binary content"
    );
    assert_eq!(mode_of(&root.join("index.html")), 0o640, "file mode");
    assert_eq!(
        mode_of(&root.join("static")),
        0o555,
        "read-only directory mode"
    );
    assert_eq!(
        fs::read_link(root.join("home.html")).unwrap(),
        Path::new("index.html"),
        "symlink target"
    );
    fs::set_permissions(root.join("static"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn remove_missing_dir_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let change = remove_dir(&dir.path().join("absent")).unwrap();

    assert_eq!(change.before, Before::Unchanged, "before state");
    restore(&change).unwrap();
}

#[test]
fn restore_tree_rejects_occupied_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("d");
    fs::create_dir(&root).unwrap();
    let change = remove_dir(&root).unwrap();
    fs::create_dir(&root).unwrap();
    let result = restore(&change);

    assert!(
        matches!(result, Err(FileError::RestoreConflict { .. })),
        "got {result:?}"
    );
}

#[test]
fn change_round_trips_through_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, [0xffu8, 0x00, b'\n']).unwrap();
    let change = write_file(&path, b"new", None, None).unwrap();
    let json = serde_json::to_string(&change).unwrap();
    let back: FileChange = serde_json::from_str(&json).unwrap();

    assert_eq!(back, change, "FileChange changed through JSON");
    assert!(
        json.contains("ff000a"),
        "content should be hex in JSON: {json}"
    );
}

#[test]
fn diff_shows_changed_lines() {
    let text = diff("a\nb\nc\n", "a\nB\nc\n");

    assert!(text.contains("-b\n"), "removed line missing: {text}");
    assert!(text.contains("+B\n"), "added line missing: {text}");
    assert!(
        diff("same\n", "same\n").is_empty(),
        "equal texts should give an empty diff"
    );
}
