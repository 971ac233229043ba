/* Who can change pgcrond's files (see trust.h). */
#include "trust.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "text.h"

static bool owner_ok(uid_t owner, uid_t self)
{
	return owner == 0 || owner == self;
}

/* What is wrong with ST (of NAME, shown as SHOWN) as a thing nobody else may change; 0 if
 * nothing. STRICT: no sticky-bit exception (the target, and a file's own directory). */
static int check_one(const struct stat *st, const char *shown, const char *chmod_path, bool strict,
                     uid_t self, char *err, size_t errlen)
{
	if (!owner_ok(st->st_uid, self)) {
		/* Run by the wrong user (import as postgres, state_dir the pgcrond user's), the
		 * cure is to run as the owner: chown root of a directory the daemon writes would
		 * break it. So that comes first; chown root only for what root should own. */
		const struct passwd *pw = getpwuid(st->st_uid);
		char who[96];
		if (pw)
			text_format(who, sizeof(who), "%s", pw->pw_name);
		else
			text_format(who, sizeof(who), "#%u", (unsigned)st->st_uid);
		text_format(err, errlen,
		            "%s is owned by uid %u, neither root nor the user pgcrond runs as (uid "
		            "%u); run pgcrond as its owner (sudo -u %s pgcrond ...), or, if only "
		            "root should change it, chown root %s",
		            shown, (unsigned)st->st_uid, (unsigned)self, who, chmod_path);
		return -EPERM;
	}
	if (!(st->st_mode & (S_IWGRP | S_IWOTH)))
		return 0;
	/* /tmp: writable by all, but the sticky bit keeps others from renaming or removing
	 * what they do not own, and root owns the directory itself */
	if (!strict && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX) && st->st_uid == 0)
		return 0;
	text_format(err, errlen, "%s is writable by %s (mode %04o); run chmod go-w %s", shown,
	            (st->st_mode & S_IWOTH) ? "others" : "its group",
	            (unsigned)(st->st_mode & 07777), chmod_path);
	return -EPERM;
}

/* Every directory from DIR (absolute, resolved) up to /, the first one STRICT_FIRST. */
static int check_chain(const char *dir, bool strict_first, const char *below, uid_t self, char *err,
                       size_t errlen)
{
	char cur[PATH_MAX], shown[PATH_MAX + 64];
	struct stat st;
	bool strict = strict_first;

	if (text_format(cur, sizeof(cur), "%s", dir) >= (int)sizeof(cur))
		return -ENAMETOOLONG;
	for (;;) {
		if (stat(cur, &st) < 0) {
			int e = errno;
			text_format(err, errlen, "cannot examine directory %s above %s: %s", cur,
			            below, strerror(e));
			return -e;
		}
		text_format(shown, sizeof(shown), "directory %s above %s", cur, below);
		int rc = check_one(&st, shown, cur, strict, self, err, errlen);
		if (rc < 0)
			return rc;
		strict = false;
		if (strcmp(cur, "/") == 0)
			return 0;
		char *slash = strrchr(cur, '/');
		if (slash == cur)
			slash[1] = '\0'; /* "/etc" -> "/" */
		else
			*slash = '\0';
	}
}

/* The resolved directory holding PATH (which need not be resolvable itself: a link). */
static int parent_of(const char *path, char *out)
{
	char tmp[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!slash)
		return realpath(".", out) ? 0 : -errno;
	if (slash == path)
		return realpath("/", out) ? 0 : -errno;
	if ((size_t)(slash - path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, (size_t)(slash - path));
	tmp[slash - path] = '\0';
	return realpath(tmp, out) ? 0 : -errno;
}

int trust_check(const char *path, bool is_dir, uid_t self, char *err, size_t errlen)
{
	char real[PATH_MAX], shown[PATH_MAX + 16], dir[PATH_MAX];
	struct stat st, lst;
	int rc;

	if (errlen)
		err[0] = '\0';
	if (lstat(path, &lst) < 0 || stat(path, &st) < 0) {
		int e = errno;
		if (e == ENOENT)
			return -ENOENT;
		text_format(err, errlen, "cannot examine %s: %s", path, strerror(e));
		return -e;
	}
	text_format(shown, sizeof(shown), "%s%s", is_dir ? "directory " : "", path);
	rc = check_one(&st, shown, path, true, self, err, errlen);
	if (rc < 0)
		return rc;
	if (!realpath(path, real)) {
		int e = errno;
		text_format(err, errlen, "cannot resolve %s: %s", path, strerror(e));
		return -e;
	}
	/* the directories above where it really is; a file's own directory strictly */
	if (strcmp(real, "/") != 0) {
		rc = parent_of(real, dir);
		if (rc < 0)
			text_format(err, errlen, "cannot resolve the directory of %s: %s", path,
			            strerror(-rc));
		else
			rc = check_chain(dir, !is_dir, path, self, err, errlen);
		if (rc < 0)
			return rc;
	}
	/* a symbolic link can be replaced by whoever can write where the link is */
	if (S_ISLNK(lst.st_mode)) {
		rc = parent_of(path, dir);
		if (rc < 0)
			text_format(err, errlen, "cannot resolve the directory of %s: %s", path,
			            strerror(-rc));
		else
			rc = check_chain(dir, true, path, self, err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}
