"""Jenkinsfiles with known problems: syntax errors the Groovy compiler reports at an exact
position, and valid Groovy that breaks a declarative rule."""

from __future__ import annotations

# name -> (source, line, column, a fragment of the compiler's message)
SYNTAX_ERRORS: dict[str, tuple[str, int, int, str]] = {
    "missing-brace": (
        "pipeline {\n    agent any\n    stages {\n        stage('Build') {\n"
        "            steps {\n                sh 'make'\n            }\n        }\n    }\n",
        10, 1, "expecting '}'",
    ),
    "two-arguments-no-comma": (
        "pipeline {\n    agent any\n    stages {\n        stage('Build') {\n"
        "            steps {\n                sh('make' 'test')\n            }\n        }\n"
        "    }\n}\n",
        6, 27, "unexpected token: test",
    ),
    "double-assignment": ("def version = = '1.0'\nnode {\n    echo version\n}\n", 1, 15, "="),
    "extra-parenthesis": (
        "pipeline {\n    agent any\n    stages {\n        stage('Test') {\n            steps {\n"
        "                script {\n                    if (env.BRANCH_NAME == 'main')) {\n"
        "                        echo 'main'\n                    }\n                }\n"
        "            }\n        }\n    }\n}\n",
        7, 51, "unexpected token: )",
    ),
    "string-not-closed": (
        "node {\n    stage('Build') {\n        sh 'make\n    }\n}\n", 3, 17, "expecting '''",
    ),
    "triple-quoted-not-closed": (
        "pipeline {\n    agent any\n    stages {\n        stage('Build') {\n            steps {\n"
        '                sh """\n                    make all\n            }\n        }\n'
        "    }\n}\n",
        12, 1, 'triple-quoted string starting with """ is not closed (opened at line 6, column 20)',
    ),
}  # fmt: skip


def _pipeline(stages: str, top: str = "    agent any\n") -> str:
    return f"pipeline {{\n{top}    stages {{\n{stages}    }}\n}}\n"


_BUILD = (
    "        stage('Build') {\n            steps {\n                sh 'make'\n"
    "            }\n        }\n"
)

# name -> (source, [(line, column, message fragment)])
STRUCTURE_ERRORS: dict[str, tuple[str, list[tuple[int, int, str]]]] = {
    "no-agent": (_pipeline(_BUILD, top=""), [(1, 1, "pipeline has no 'agent' section")]),
    "two-agents": (
        _pipeline(_BUILD, top="    agent any\n    agent none\n"),
        [(3, 5, "section 'agent' appears twice in pipeline (first at line 2)")],
    ),
    "no-stages": (
        "pipeline {\n    agent any\n    post {\n        always {\n            echo 'x'\n"
        "        }\n    }\n}\n",
        [(1, 1, "pipeline has no 'stages' section")],
    ),
    "empty-stages": (_pipeline(""), [(3, 5, "stages of pipeline has no stage")]),
    "stage-without-name": (
        _pipeline("        stage {\n            steps {\n                sh 'make'\n"
                  "            }\n        }\n"),
        [(4, 9, "stage needs a name")],
    ),
    "steps-and-parallel": (
        _pipeline(
            "        stage('Checks') {\n            steps {\n                sh 'lint'\n"
            "            }\n            parallel {\n                stage('A') {\n"
            "                    steps {\n                        sh 'a'\n                    }\n"
            "                }\n            }\n        }\n"
        ),
        [(4, 9, "stage 'Checks' must have exactly one of steps, stages, parallel or matrix "
                "(found steps, parallel)")],
    ),
    "stage-without-steps": (
        _pipeline("        stage('Build') {\n            agent any\n        }\n"),
        [(4, 9, "stage 'Build' must have exactly one of steps, stages, parallel or matrix "
                "(found none of them)")],
    ),
    "matrix-at-pipeline-level": (
        "pipeline {\n    agent any\n    matrix {\n        axes {\n            axis {\n"
        "                name 'OS'\n                values 'linux'\n            }\n"
        "        }\n    }\n}\n",
        [(1, 1, "pipeline has no 'stages' section"), (3, 5, "unknown section 'matrix'")],
    ),
    "steps-outside-steps": (
        _pipeline("        stage('Build') {\n            sh 'make'\n        }\n"),
        [(4, 9, "found none of them"), (5, 13, "unknown section 'sh' in stage 'Build'")],
    ),
    "unknown-post-condition": (
        _pipeline(_BUILD).replace("}\n}\n", "}\n    post {\n        sucess {\n"
                                   "            echo 'ok'\n        }\n    }\n}\n"),
        [(11, 9, "unknown post condition 'sucess'")],
    ),
    "duplicate-stage-names": (
        _pipeline(_BUILD + _BUILD), [(9, 9, "duplicate stage name 'Build' (first at line 4)")],
    ),
    "unknown-when-condition": (
        _pipeline("        stage('Deploy') {\n            when {\n"
                  "                branchName 'main'\n"
                  "            }\n            steps {\n                sh 'deploy'\n            }\n"
                  "        }\n"),
        [(6, 17, "unknown when condition 'branchName'")],
    ),
    "nested-parallel": (
        _pipeline(
            "        stage('Outer') {\n            parallel {\n                stage('Inner') {\n"
            "                    parallel {\n                        stage('Leaf') {\n"
            "                            steps {\n                                sh 'x'\n"
            "                            }\n                        }\n                    }\n"
            "                }\n            }\n        }\n"
        ),
        [(7, 21, "parallel cannot be nested in parallel/matrix")],
    ),
    "matrix-without-axes": (
        _pipeline(
            "        stage('Cells') {\n            matrix {\n                stages {\n"
            "                    stage('Cell') {\n                        steps {\n"
            "                            sh 'x'\n                        }\n"
            "                    }\n                }\n            }\n        }\n"
        ),
        [(5, 13, "matrix of stage 'Cells' has no 'axes'")],
    ),
    "agent-word": (_pipeline(_BUILD, top="    agent anything\n"),
                   [(2, 5, "agent of pipeline must be 'any', 'none' or a { } block")]),
    "empty-steps": (
        _pipeline("        stage('Build') {\n            steps {\n            }\n        }\n"),
        [(5, 13, "stage 'Build': steps block is empty")],
    ),
}  # fmt: skip
