/* Who can change pgcrond's files (see trust.h). */
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* The path is walked one name at a time from /, each name opened (O_PATH, O_NOFOLLOW) below
 * the descriptor of the directory already checked, and each checked on its descriptor
 * (fstat): a directory or link others could swap between a check and a use is refused, and
 * so no check can be raced. Every directory passed is checked (a root-owned sticky one may
 * be writable by all), the one holding the target or a symbolic link strictly; a link's
 * target is walked the same way, as many links as the kernel would follow. */
#define MAX_LINKS 40
#define MAX_DEPTH 256

struct walk {
	int fds[MAX_DEPTH]; /* the directories from / down */
	char paths[MAX_DEPTH][PATH_MAX];
	int depth; /* fds[depth - 1] is the current directory */
};

static void walk_reset(struct walk *w)
{
	while (w->depth > 1)
		close(w->fds[--w->depth]);
}

static void walk_free(struct walk *w)
{
	while (w->depth > 0)
		close(w->fds[--w->depth]);
}

static int check_fd(int fd, const char *shown, const char *chmod_path, bool strict, uid_t self,
                    char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		text_format(err, errlen, "cannot examine %s: %s", shown, strerror(e));
		return -e;
	}
	return check_one(&st, shown, chmod_path, strict, self, err, errlen);
}

/* Check the directory the walk is in strictly: it holds the target or a link. */
static int check_holder(struct walk *w, const char *path, uid_t self, char *err, size_t errlen)
{
	char shown[PATH_MAX + 64];
	const char *dir = w->paths[w->depth - 1];
	text_format(shown, sizeof(shown), "directory %s above %s", dir, path);
	return check_fd(w->fds[w->depth - 1], shown, dir, true, self, err, errlen);
}

int trust_open(const char *path, bool is_dir, uid_t self, int *out, char *err, size_t errlen)
{
	struct walk *w = calloc(1, sizeof(*w));
	char *rest = malloc(PATH_MAX * 2), *tmp = malloc(PATH_MAX * 2);
	int rc = 0, links = 0, fd = -1; /* FD: the name being looked at */
	/* what a failure below says of PATH, unless it wrote a message of its own (NULL: none) */
	const char *cannot = "cannot examine";

	*out = -1;
	if (errlen)
		err[0] = '\0';
	if (!w || !rest || !tmp) {
		rc = -ENOMEM;
		goto out;
	}
	if (path[0] == '/') {
		rc =
		    text_format(rest, PATH_MAX * 2, "%s", path) >= PATH_MAX * 2 ? -ENAMETOOLONG : 0;
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			rc = -errno;
		else if (text_format(rest, PATH_MAX * 2, "%s/%s", cwd, path) >= PATH_MAX * 2)
			rc = -ENAMETOOLONG;
	}
	if (rc < 0)
		goto out;
	w->fds[0] = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (w->fds[0] < 0) {
		rc = -errno;
		text_format(err, errlen, "cannot examine /: %s", strerror(-rc));
		goto out;
	}
	text_copy(w->paths[0], PATH_MAX, "/");
	w->depth = 1;
	char shown0[PATH_MAX + 64];
	text_format(shown0, sizeof(shown0), "directory / above %s", path);
	if ((rc = check_fd(w->fds[0], shown0, "/", false, self, err, errlen)) < 0)
		goto out;

	for (;;) {
		/* the next name of REST */
		char *p = rest;
		while (*p == '/')
			p++;
		if (!*p) {
			/* the path ends in a directory (or is "/") */
			if (!is_dir) {
				rc = -EISDIR;
				text_format(err, errlen, "%s is a directory", path);
				goto out;
			}
			char shown[PATH_MAX + 16];
			text_format(shown, sizeof(shown), "directory %s", path);
			rc = check_fd(w->fds[w->depth - 1], shown, path, true, self, err, errlen);
			goto out;
		}
		char *end = strchr(p, '/');
		size_t nl = end ? (size_t)(end - p) : strlen(p);
		char name[NAME_MAX + 1];
		if (nl > NAME_MAX) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		memcpy(name, p, nl);
		name[nl] = '\0';
		memmove(rest, p + nl, strlen(p + nl) + 1);
		bool last = rest[strspn(rest, "/")] == '\0';
		if (strcmp(name, ".") == 0)
			continue;
		if (strcmp(name, "..") == 0) {
			if (w->depth > 1)
				close(w->fds[--w->depth]);
			continue;
		}
		fd = openat(w->fds[w->depth - 1], name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			cannot = rc == -ENOENT ? NULL : cannot; /* the caller's to tell */
			goto out;
		}
		struct stat st;
		if (fstat(fd, &st) < 0) {
			rc = -errno;
			goto out;
		}
		char here[PATH_MAX];
		const char *up = w->paths[w->depth - 1];
		text_format(here, sizeof(here), "%s%s%s", up, strcmp(up, "/") ? "/" : "", name);
		if (S_ISLNK(st.st_mode)) {
			/* whoever can write where a link is can replace it */
			if ((rc = check_holder(w, path, self, err, errlen)) < 0)
				goto out;
			char target[PATH_MAX];
			ssize_t tl = readlinkat(fd, "", target, sizeof(target) - 1);
			close(fd);
			fd = -1;
			cannot = "cannot resolve";
			if (tl < 0 || ++links > MAX_LINKS) {
				rc = tl < 0 ? -errno : -ELOOP;
				goto out;
			}
			target[tl] = '\0';
			if (text_format(tmp, PATH_MAX * 2, "%s/%s", target, rest) >= PATH_MAX * 2) {
				rc = -ENAMETOOLONG;
				goto out;
			}
			cannot = "cannot examine";
			memcpy(rest, tmp, strlen(tmp) + 1);
			if (target[0] == '/')
				walk_reset(w);
			continue;
		}
		if (S_ISDIR(st.st_mode) && !(last && !is_dir)) {
			if (w->depth >= MAX_DEPTH) {
				rc = -ELOOP;
				cannot = "cannot resolve";
				goto out;
			}
			char shown[PATH_MAX * 2 + 32];
			text_format(shown, sizeof(shown), "directory %s above %s", here, path);
			if (!last &&
			    (rc = check_one(&st, shown, here, false, self, err, errlen)) < 0)
				goto out;
			w->fds[w->depth] = fd;
			fd = -1;
			text_copy(w->paths[w->depth], PATH_MAX, here);
			w->depth++;
			continue;
		}
		/* the target, in the directory the walk is in */
		if (!last || (is_dir && !S_ISDIR(st.st_mode))) {
			rc = -ENOTDIR;
			goto out;
		}
		rc = check_one(&st, path, path, true, self, err, errlen);
		if (rc == 0)
			rc = check_holder(w, path, self, err, errlen);
		if (rc < 0)
			goto out;
		/* readable, as it was checked: the directory holding it is trusted, so
		 * nobody else can have swapped the name since */
		int rfd = S_ISREG(st.st_mode)
		              ? openat(w->fds[w->depth - 1], name,
		                       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
		              : -1;
		struct stat rst;
		if (rfd >= 0 &&
		    (fstat(rfd, &rst) < 0 || rst.st_dev != st.st_dev || rst.st_ino != st.st_ino)) {
			close(rfd);
			rc = -EAGAIN;
			text_format(err, errlen, "%s changed while it was checked; try again",
			            path);
			goto out;
		}
		*out = rfd;
		goto out;
	}
out:
	if (rc < 0 && cannot && errlen && !err[0])
		text_format(err, errlen, "%s %s: %s", cannot, path, strerror(-rc));
	if (fd >= 0)
		close(fd);
	if (w)
		walk_free(w);
	free(w);
	free(rest);
	free(tmp);
	return rc;
}

int trust_check(const char *path, bool is_dir, uid_t self, char *err, size_t errlen)
{
	int fd = -1;
	int rc = trust_open(path, is_dir, self, &fd, err, errlen);
	if (fd >= 0)
		close(fd);
	return rc;
}
