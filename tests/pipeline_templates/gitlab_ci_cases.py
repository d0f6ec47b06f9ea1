""".gitlab-ci.yml cases for GitLab's own rules: each names the rule it mirrors (GitLab's
`lib/gitlab/ci/yaml_processor.rb` and config entries, or the CI/CD YAML reference at
https://docs.gitlab.com/ci/yaml/), with the exact errors; and files GitLab accepts."""

from __future__ import annotations

DOCS = "https://docs.gitlab.com/ci/yaml/"
PROC = "lib/gitlab/ci/yaml_processor.rb"
_LATER = "which runs in a later stage ('{}'): GitLab needs it in the current or a prior stage"
_CHAIN = "".join(f".l{i}:\n  extends: .l{i + 1}\n" for i in range(1, 11))

# name -> (the GitLab rule it mirrors, text, [(line, column, message)])
GITLAB_RULES: dict[str, tuple[str, str, list[tuple[int, int, str]]]] = {
    "stage-not-declared": (
        f"{PROC} validate_job_stage!: chosen stage does not exist",
        "stages: [build, test]\nlint:\n  stage: lint\n  script: ruff .\n",
        [(3, 10, "job 'lint': stage 'lint' is not declared in stages (.pre, build, test, .post)")],
    ),
    "default-stages": (
        f"{DOCS}#stages: without stages, build, test and deploy (plus .pre/.post)",
        "ship:\n  stage: deploy\n  script: x\nlint:\n  stage: lint\n  script: x\n",
        [(5, 10, "job 'lint': stage 'lint' is not declared in stages (.pre, build, test, "
                 "deploy, .post)")],
    ),
    "default-job-stage-is-test": (
        f"{DOCS}#stage: a job without stage runs in test, which must then be declared",
        "stages: [build]\nunit:\n  script: x\n",
        [(3, 3, "job 'unit': stage 'test' is not declared in stages (.pre, build, .post)")],
    ),
    "undefined-need": (
        f"{PROC} validate_job_dependency!: undefined need",
        "build:\n  stage: build\n  script: x\ntest:\n  needs: [build, compile]\n  script: x\n",
        [(5, 18, "job 'test' needs 'compile', which is not a job")],
    ),
    "need-in-later-stage": (
        f"{PROC} validate_job_dependency!: need is not defined in current or prior stages",
        "build:\n  stage: build\n  needs: [deploy]\n  script: x\n"
        "deploy:\n  stage: deploy\n  script: x\n",
        [(3, 11, "job 'build' needs 'deploy', " + _LATER.format("deploy"))],
    ),
    "rules-need-in-later-stage": (
        f"{PROC} validate_job_needs!: the needs of each rule are checked the same way",
        "build:\n  stage: build\n  script: x\n  rules:\n    - if: $CI_COMMIT_TAG\n"
        "      needs: [deploy]\ndeploy:\n  stage: deploy\n  script: x\n",
        [(6, 15, "job 'build' needs 'deploy', " + _LATER.format("deploy"))],
    ),
    "duplicate-need": (
        f"{PROC} validate_needs_specification!: has the following needs duplicated",
        "build:\n  stage: build\n  script: x\n"
        "test:\n  needs: [build, {job: build, artifacts: false}]\n  script: x\n",
        [(5, 18, "job 'test' lists need 'build' more than once")],
    ),
    "dependency-undefined": (
        f"{PROC} validate_job_dependency!: undefined dependency",
        "build:\n  script: x\ntest:\n  dependencies: [biuld]\n  script: x\n",
        [(4, 18, "job 'test' depends on 'biuld', which is not a job")],
    ),
    "dependency-in-later-stage": (
        f"{PROC} validate_job_dependency!: dependency is not defined in current or prior stages",
        "unit:\n  dependencies: [ship]\n  script: x\nship:\n  stage: deploy\n  script: x\n",
        [(2, 18, "job 'unit' depends on 'ship', " + _LATER.format("deploy"))],
    ),
    "needs-cycle": (
        f"{PROC} check_circular_dependencies (Dag): circular dependency in needs",
        "a:\n  needs: [c]\n  script: x\nb:\n  needs: [a]\n  script: x\n"
        "c:\n  needs: [b]\n  script: x\n",
        [(2, 10, "needs form a cycle: a -> c -> b -> a")],
    ),
    "extends-unknown": (
        "config/extendable/entry.rb: Unknown extends key in extended job",
        "build:\n  extends: .template\n  script: x\n",
        [(2, 12, "'build' extends unknown '.template'")],
    ),
    "extends-circular": (
        "config/extendable/entry.rb: Circular dependency detected in extended job",
        ".a:\n  extends: .b\n.b:\n  extends: .a\nbuild:\n  extends: .a\n  script: x\n",
        [(4, 12, "circular extends: .a -> .b -> .a")],
    ),
    "extends-twelve-levels": (
        f"{DOCS}#extends: up to 11 levels of inheritance (entry.rb: more than 10 ancestors)",
        _CHAIN + ".l11:\n  extends: .l12\n.l12:\n  script: x\njob:\n  extends: .l1\n",
        [(26, 12, "'job': extends nested more than 11 levels")],
    ),
    "no-visible-job": (
        f"{DOCS}#hide-a-job; config/entry/jobs.rb: should contain at least one visible job",
        ".hidden:\n  script: x\n",
        [(1, 1, "no visible job: every job is hidden (name starts with '.') or absent")],
    ),
    "need-of-hidden-job": (
        f"{DOCS}#hide-a-job: hidden jobs are not jobs, so needing one is an undefined need",
        ".setup:\n  script: x\ntest:\n  needs: [.setup]\n  script: x\n",
        [(4, 11, "job 'test' needs '.setup', which is not a job")],
    ),
    "job-without-script": (
        "config/entry/job.rb: config should implement the script:, run:, or trigger: keyword",
        "build:\n  stage: build\n",
        [(2, 3, "job 'build' has no script, run or trigger")],
    ),
    "on-stop-undefined": (
        f"{PROC} validate_on_stop_job!: on_stop job is not defined",
        "review:\n  script: x\n  environment:\n    name: review\n    on_stop: stop_review\n",
        [(5, 14, "job 'review': on_stop job 'stop_review' is not defined")],
    ),
    "on-stop-without-action-stop": (
        f"{PROC} validate_on_stop_job!: on_stop job needs to have action stop defined",
        "review:\n  script: x\n  environment:\n    name: review\n    on_stop: stop_review\n"
        "stop_review:\n  script: x\n  when: manual\n  environment:\n    name: review\n",
        [(5, 14, "job 'review': on_stop job 'stop_review' needs to have action stop defined")],
    ),
}  # fmt: skip

# name -> (what GitLab allows, text): files GitLab accepts, no error may be reported.
GITLAB_VALID: dict[str, tuple[str, str]] = {
    "same-stage-need": (
        f"{DOCS}#needs: jobs in the same stage (GitLab 14.2 and later)",
        "lint:\n  script: x\nunit:\n  needs: [lint]\n  script: x\n",
    ),
    "empty-needs": (
        f"{DOCS}#needs: needs: [] starts the job at once",
        "stages: [build, deploy]\nship:\n  stage: deploy\n  needs: []\n  script: x\n",
    ),
    "optional-need-absent": (
        f"{DOCS}#needsoptional: an optional need may be missing (not in this file)",
        "test:\n  needs: [{job: compile, optional: true}]\n  script: x\n",
    ),
    "pre-and-post": (
        f"{DOCS}#stage-pre and #stage-post exist without being declared",
        "stages: [build]\nsetup:\n  stage: .pre\n  script: x\nbuild:\n  stage: build\n"
        "  script: x\nreport:\n  stage: .post\n  needs: [build]\n  script: x\n",
    ),
    "parallel-instance-names": (
        f"{DOCS}#dependencies and #needsparallelmatrix: instances are named "
        "'job 1/N' and 'job: [values]' (Config::Normalizer)",
        "stages: [build, test]\nshards:\n  stage: build\n  parallel: 2\n  script: x\n"
        "ruby:\n  stage: build\n  parallel:\n    matrix:\n      - RUBY: ['3.0', '3.3']\n"
        "        PROVIDER: aws\n  script: x\n"
        "test:\n  stage: test\n  needs: ['shards 1/2', {job: ruby, parallel: {matrix: "
        "[{RUBY: '3.3', PROVIDER: aws}]}}]\n  dependencies: ['ruby: [3.0, aws]', shards]\n"
        "  script: x\n",
    ),
    "matrix-variables-in-needs": (
        "gitlab-org/gitlab!166073 (GitLab 17.6): a matrix job's own variables in needs",
        "build:\n  stage: build\n  parallel:\n    matrix:\n      - OS: [linux, mac]\n  script: x\n"
        "test:\n  parallel:\n    matrix:\n      - OS: [linux, mac]\n"
        "  needs: ['build: [$OS]']\n  script: x\n",
    ),
    "eleven-extends-levels": (
        f"{DOCS}#extends: up to 11 levels of inheritance",
        _CHAIN + ".l11:\n  script: x\njob:\n  extends: .l1\n",
    ),
    "on-stop-pair": (
        f"{DOCS}#environmenton_stop",
        "review:\n  script: x\n  environment:\n    name: review/$CI_COMMIT_REF_SLUG\n"
        "    on_stop: stop_review\nstop_review:\n  script: x\n  when: manual\n  environment:\n"
        "    name: review/$CI_COMMIT_REF_SLUG\n    action: stop\n",
    ),
    "global-keywords-are-not-jobs": (
        f"{DOCS}#global-keywords: workflow, default, variables, include are not jobs",
        "workflow:\n  rules:\n    - if: $CI_COMMIT_BRANCH\ndefault:\n  image: alpine\n"
        "  before_script: [echo hi]\nvariables:\n  A: b\nbuild:\n  script: x\n",
    ),
}  # fmt: skip
