#!/usr/bin/env python3
"""The status page acting as a PostgreSQL role, in headless chromium (it_page_actions.c).

  page_actions.py URL CONNINFO SCREENSHOT DIR

URL is the daemon's page, CONNINFO a superuser's connection to its database (psql checks
what the page did), SCREENSHOT where the logged-in page is saved, DIR a scratch directory.
Roles page_alice and page_bob log in with the passwords it_page_actions.c gave them.
Exits non-zero with what went wrong.
"""
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

url, conninfo, shot, scratch = sys.argv[1:5]


def sql(query, dbname=None):
    """The first value of QUERY, run as the superuser (in DBNAME, else the test's database)."""
    ci = conninfo + (f" dbname={dbname}" if dbname else "")
    return subprocess.run(["psql", "-XAtq", "-d", ci, "-c", query], check=True,
                          capture_output=True, text=True).stdout.strip()


def wait_sql(query, expected, timeout, why):
    end = time.monotonic() + timeout
    while True:
        got = sql(query)
        if got == expected:
            return
        if time.monotonic() > end:
            sys.exit(f"{why}: {query} gave {got!r}, not {expected!r} within {timeout} s")
        time.sleep(0.1)


opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
          "--no-first-run", "--disable-background-networking", "--disable-sync",
          f"--user-data-dir={scratch}/selenium-profile"):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
wait = WebDriverWait(driver, 10)


def post(path, fields):
    """POST form FIELDS to PATH from the page (its cookie goes along): [status, body]."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', body: new URLSearchParams(arguments[1])})"
        ".then(async r => done([r.status, await r.text()]))", path, fields)


def row(job):
    return driver.find_elements(By.CSS_SELECTOR, f'#myjobs tr[data-job="{job}"]')


def click(job, action):
    """Click JOB's ACTION button once it is shown (found and clicked in one script: the rows
    are drawn again when the role's state changes)."""
    wait.until(lambda d: d.execute_script(
        "const b = document.querySelector(arguments[0]); if (b) b.click(); return !!b;",
        f'#myjobs tr[data-job="{job}"] button[data-action="{action}"]'))


def login(role, password):
    form = wait.until(ec.visibility_of_element_located((By.ID, "signin")))
    form.find_element(By.NAME, "role").clear()
    form.find_element(By.NAME, "role").send_keys(role)
    form.find_element(By.NAME, "password").send_keys(password)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def ticks(who="page_alice"):
    return int(sql(f"SELECT count(*) FROM ticks WHERE job = 'ajob' AND who = '{who}'"))


try:
    driver.get(url)
    # a wrong password is refused, and the session form stays hidden
    login("page_alice", "not-the-password")
    wait.until(ec.text_to_be_present_in_element((By.ID, "signin-error"), "password"))
    assert not driver.find_element(By.ID, "session").is_displayed(), "a session shown"
    assert driver.get_cookie("pgcrond_session") is None, "a cookie after a refused login"
    # a role pg_hba.conf trusts: any password would do, so the page takes none
    login("postgres", "anything")
    wait.until(ec.text_to_be_present_in_element((By.ID, "signin-error"), "did not ask"))

    login("page_alice", "page_alice-secret")
    wait.until(ec.visibility_of_element_located((By.ID, "session")))
    cookie = driver.get_cookie("pgcrond_session")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie
    csrf = driver.find_element(By.CSS_SELECTOR, "#newjob input[name=csrf]")
    assert len(csrf.get_attribute("value")) == 32, "no token in the page"

    # a plain form becomes cron, with its next five fires beside the field
    form = driver.find_element(By.ID, "newjob")
    sched = form.find_element(By.NAME, "schedule")
    sched.send_keys("every weekday at 06:00")
    form.find_element(By.NAME, "command").click()
    wait.until(lambda d: sched.get_attribute("value") == "0 6 * * 1-5")
    wait.until(lambda d: d.find_element(By.ID, "fires").text.count("06:00:00") == 5)
    sched.clear()
    sched.send_keys("61 * * * *")
    wait.until(ec.text_to_be_present_in_element((By.ID, "fires"), "column"))

    # alice creates a job; it runs as alice within 10 s
    sched.clear()
    sched.send_keys("2 seconds")
    form.find_element(By.NAME, "name").send_keys("ajob")
    form.find_element(By.NAME, "command").send_keys(
        "INSERT INTO ticks (job) VALUES ('ajob')")
    form.find_element(By.ID, "save").click()
    wait.until(lambda d: row("ajob"))
    wait_sql("SELECT count(*) > 0 FROM ticks WHERE job = 'ajob' AND who = 'page_alice'", "t",
             10, "the job made on the page did not run as page_alice")

    # pause: cron.job.active false, and no more runs
    click("ajob", "pause")
    wait_sql("SELECT active FROM cron.job WHERE jobname = 'ajob'", "f", 10, "pause")
    time.sleep(1)
    paused = ticks()
    time.sleep(4)
    assert ticks() == paused, f"runs while paused: {paused} then {ticks()}"
    # resume: runs again
    click("ajob", "resume")
    wait_sql("SELECT active FROM cron.job WHERE jobname = 'ajob'", "t", 10, "resume")
    wait_sql(f"SELECT count(*) > {paused} FROM ticks WHERE job = 'ajob'", "t", 10,
             "no run after resume")

    # edit: a schedule that does not fire soon, then run now runs it once
    click("ajob", "edit")
    sched.clear()
    sched.send_keys("0 0 1 1 *")
    driver.find_element(By.ID, "save").click()
    wait_sql("SELECT schedule FROM cron.job WHERE jobname = 'ajob'", "0 0 1 1 *", 10, "edit")
    time.sleep(3)  # a run the old schedule began ends
    before = ticks()
    click("ajob", "trigger")
    wait_sql(f"SELECT count(*) FROM ticks WHERE job = 'ajob'", str(before + 1), 10,
             "run now did not run the job")
    wait.until(lambda d: "succeeded" in d.execute_script(
        "return document.querySelector('#myjobs tr[data-job=ajob] .outcome').textContent"))
    time.sleep(2)
    assert ticks() == before + 1, f"run now ran {ticks() - before} times"

    # bob's job: not shown to alice, and her session cannot pause, run or unschedule it
    sql("SELECT cron.schedule_in_database('bjob', '0 0 1 1 *', 'SELECT 1', current_database(),"
        " 'page_bob')")
    wait_sql("SELECT count(*) FROM pgcrond.job WHERE jobname = 'bjob'", "1", 10, "bob's job")
    time.sleep(2.5)  # a refresh of the page's state
    assert not row("bjob"), "alice sees bob's job"
    token = csrf.get_attribute("value")
    for action in ("pause", "trigger", "unschedule", "drop"):
        status, body = post(f"jobs/bjob/{action}", {"csrf": token})
        assert status in (400, 403), f"alice's {action} of bob's job: {status} {body}"
    assert sql("SELECT active FROM cron.job WHERE jobname = 'bjob'") == "t", "bob's job paused"
    assert sql("SELECT count(*) FROM pgcrond.trigger_request WHERE job_name = 'bjob'") == "0", \
        "a request of alice's for bob's job"

    # a POST without the page's token, or with another, is refused
    for fields in ({}, {"csrf": "0" * 32}):
        status, body = post("jobs/ajob/pause", fields)
        assert status == 403 and "csrf" in body, f"a POST without the token: {status} {body}"
    assert sql("SELECT active FROM cron.job WHERE jobname = 'ajob'") == "t", \
        "a POST without the token paused the job"

    sched.send_keys("every weekday at 06:00")  # the screenshot shows what it means
    wait.until(lambda d: d.find_element(By.ID, "fires").text.count("06:00:00") == 5)
    driver.save_screenshot(shot)
    sched.clear()

    # a job in another database: refused without the grant pg_cron asks for, then made and
    # run there as alice once an admin grants it
    other = sql("SELECT current_database()") + "_other"
    sql(f"DROP DATABASE IF EXISTS {other}")
    sql(f"CREATE DATABASE {other}")
    sql("CREATE TABLE ticks (job text, who text DEFAULT session_user);"
        " GRANT INSERT, SELECT ON ticks TO PUBLIC", other)
    for field, value in (("name", "ojob"), ("schedule", "2 seconds"), ("database", other),
                         ("command", "INSERT INTO ticks (job) VALUES ('ojob')")):
        form.find_element(By.NAME, field).clear()
        form.find_element(By.NAME, field).send_keys(value)
    driver.find_element(By.ID, "save").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "act-result"), "schedule_in_database"))
    sql("GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text,text,text,text,text,boolean)"
        " TO page_alice")
    driver.find_element(By.ID, "save").click()
    wait.until(lambda d: row("ojob"))
    assert sql("SELECT database FROM cron.job WHERE jobname = 'ojob'") == other
    deadline = time.time() + 10
    while sql("SELECT count(*) FROM ticks WHERE who = 'page_alice'", other) == "0":
        assert time.time() < deadline, f"the job made in {other} did not run there as alice"
        time.sleep(0.2)
    # moved back by the edit form with the field emptied: the history database again
    click("ojob", "edit")
    assert form.find_element(By.NAME, "database").get_attribute("value") == other
    form.find_element(By.NAME, "database").clear()
    driver.find_element(By.ID, "save").click()
    wait_sql("SELECT database = current_database() FROM cron.job WHERE jobname = 'ojob'", "t",
             10, "the edit with no database did not move ojob back")
    sql("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'ojob'")

    # a job the daemon does not run is named at the top of the page, until it is gone (why
    # it is not run is shown to a reader with the listener's token only)
    sql("SELECT cron.schedule('never', '0 0 30 2 *', 'SELECT 1')")
    wait.until(lambda d: "never (jobid" in d.find_element(By.ID, "banner").text)
    assert "is not run" in driver.find_element(By.ID, "banner").text
    # past ten, the banner counts the rest
    sql("SELECT cron.schedule('never' || i, '0 0 30 2 *', 'SELECT 1') FROM generate_series(1, 10) i")
    wait.until(lambda d: "1 more jobs made in SQL are not run" in d.find_element(By.ID, "banner").text)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#banner p.refused")) == 10
    sql("SELECT cron.unschedule(jobname) FROM cron.job WHERE jobname LIKE 'never%'")
    wait.until(lambda d: not d.find_element(By.ID, "banner").is_displayed())

    # unschedule from the page
    driver.execute_script("window.confirm = () => true")  # the page asks first
    click("ajob", "unschedule")
    wait_sql("SELECT count(*) FROM cron.job WHERE jobname = 'ajob'", "0", 10, "unschedule")

    # the session ends with its connection: the page asks to log in again, and the token
    # of the ended session opens nothing
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE usename = 'page_alice' AND application_name = 'pgcrond page'")
    wait.until(ec.visibility_of_element_located((By.ID, "signin")))
    status, body = post("jobs", {"csrf": token, "name": "late", "schedule": "* * * * *",
                                 "command": "SELECT 1"})
    assert status == 401, f"a POST of an ended session: {status} {body}"

    # logout ends the session
    login("page_alice", "page_alice-secret")
    wait.until(ec.visibility_of_element_located((By.ID, "session")))
    driver.find_element(By.ID, "logout").click()
    wait.until(ec.visibility_of_element_located((By.ID, "signin")))
    wait_sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'page_alice'"
             " AND application_name = 'pgcrond page'", "0", 10, "logout left the connection")
    sql(f"DROP DATABASE {other} WITH (FORCE)")
    print("page_actions: all checks passed")
except (AssertionError, TimeoutException) as e:
    driver.save_screenshot(f"{scratch}/failed.png")
    print(f"page_actions: FAILED: {e!r}\nthe page's account section:\n"
          + driver.find_element(By.ID, "account").get_attribute("outerHTML")[:6000])
    sys.exit(1)
finally:
    driver.quit()
