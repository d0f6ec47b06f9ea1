"""Jenkinsfiles with known problems: syntax errors the Groovy compiler reports at an exact
position, and valid Groovy that breaks a declarative rule; and valid declarative shapes that
must pass.

Each structure case names the Jenkins rule it mirrors by its message key in
pipeline-model-definition's Messages.properties (`jenkinsfile_rules.RULES` says where Jenkins
checks it: ModelParser or ModelValidatorImpl); the test asserts the message is that rule's.
"""

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


def _stage(name: str, body: str, indent: str = "        ") -> str:
    inner = "".join(f"{indent}    {line}\n" for line in body.splitlines())
    return f"{indent}stage('{name}') {{\n{inner}{indent}}}\n"


_STEPS = "steps {\n    sh 'make'\n}"
_BUILD = _stage("Build", _STEPS)
_AXES = "axes {\n    axis {\n        name 'OS'\n        values 'linux'\n    }\n}"

# name -> (source, [(line, column, Jenkins message key)]); the key cites the rule.
STRUCTURE_ERRORS: dict[str, tuple[str, list[tuple[int, int, str]]]] = {
    # Utils.groovy: "Only one pipeline { ... } block can be executed in a single run."
    "two-pipelines": (
        _pipeline(_BUILD) + _pipeline(_BUILD), [(11, 1, "Utils.OnlyOnePipeline")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTPipelineDef): RequiredSection "agent"
    "no-agent": (_pipeline(_BUILD, top=""), [(1, 1, "ModelValidatorImpl.RequiredSection")]),
    # ModelParser.parsePipelineStep: Parser.MultipleOfSection
    "two-agents": (
        _pipeline(_BUILD, top="    agent any\n    agent none\n"),
        [(3, 5, "Parser.MultipleOfSection")],
    ),
    # ModelParser.parseStage: Parser.MultipleOfSection (a stage's sections are unique too)
    "two-steps-blocks": (
        _pipeline(_stage("Build", f"{_STEPS}\n{_STEPS}")), [(8, 13, "Parser.MultipleOfSection")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTPipelineDef): RequiredSection "stages"
    "no-stages": (
        "pipeline {\n    agent any\n    post {\n        always {\n            echo 'x'\n"
        "        }\n    }\n}\n",
        [(1, 1, "ModelValidatorImpl.RequiredSection")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTStages): NoStages
    "empty-stages": (_pipeline(""), [(3, 5, "ModelValidatorImpl.NoStages")]),
    # ModelValidatorImpl.validateElement(ModelASTParallel) = ModelASTStages: NoStages
    "empty-parallel": (
        _pipeline(_stage("Checks", "parallel {\n}")), [(5, 13, "ModelValidatorImpl.NoStages")],
    ),
    # ModelParser.parseStage: a stage with no name (Jenkins takes the closure as the name and
    # reports it as not a string literal, then "Stage does not have a block")
    "stage-without-name": (
        _pipeline("        stage {\n            steps {\n                sh 'make'\n"
                  "            }\n        }\n"),
        [(4, 9, "ModelParser.ExpectedStageName")],
    ),
    # ModelParser.parseStage -> parseStringLiteral: ExpectedStringLiteral (no GString names)
    "interpolated-stage-name": (
        _pipeline(_BUILD.replace("stage('Build')", 'stage("Build ${env.JDK}")')),
        [(4, 9, "ModelParser.ExpectedStringLiteral")],
    ),
    # ModelParser.parseStage: StageWithoutBlock
    "stage-without-block": (
        _pipeline("        stage('Build')\n"), [(4, 9, "ModelParser.StageWithoutBlock")],
    ),
    # ModelParser.parseStages: ExpectedStage
    "steps-in-stages": (
        _pipeline("        steps {\n            sh 'make'\n        }\n"),
        [(4, 9, "ModelParser.ExpectedStage")],
    ),
    # ModelParser.parseParallel parses every child as a stage: `failFast` belongs beside
    # `parallel`, in the stage, not inside it (ExpectedStage)
    "failfast-inside-parallel": (
        _pipeline(_stage("Checks", "parallel {\n    failFast true\n"
                                   + _stage("A", _STEPS, "    ") + "}")),
        [(6, 17, "ModelParser.ExpectedStage")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTStage): TwoOfStepsStagesParallel
    "steps-and-parallel": (
        _pipeline(_stage("Checks", f"{_STEPS}\nparallel {{\n" + _stage("A", _STEPS, "    ")
                  + "}")),
        [(4, 9, "ModelValidatorImpl.TwoOfStepsStagesParallel")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTStage): NothingForStage
    "stage-without-steps": (
        _pipeline(_stage("Build", "agent any")), [(4, 9, "ModelValidatorImpl.NothingForStage")],
    ),
    # ModelParser.parsePipelineStep: Parser.UndefinedSection (+ RequiredSection "stages")
    "matrix-at-pipeline-level": (
        "pipeline {\n    agent any\n    matrix {\n        axes {\n            axis {\n"
        "                name 'OS'\n                values 'linux'\n            }\n"
        "        }\n    }\n}\n",
        [(1, 1, "ModelValidatorImpl.RequiredSection"), (3, 5, "Parser.UndefinedSection")],
    ),
    # ModelParser.parseStage: UnknownStageSection (+ NothingForStage)
    "steps-outside-steps": (
        _pipeline(_stage("Build", "sh 'make'")),
        [(4, 9, "ModelValidatorImpl.NothingForStage"),
         (5, 13, "ModelParser.UnknownStageSection")],
    ),
    # ModelParser.parseStage -> parseTools: ExpectedBlockFor
    "tools-without-block": (
        _pipeline(_stage("Build", f"tools 'maven'\n{_STEPS}")),
        [(5, 13, "ModelParser.ExpectedBlockFor")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTBuildCondition): InvalidBuildCondition
    "unknown-post-condition": (
        _pipeline(_BUILD).replace("}\n}\n", "}\n    post {\n        sucess {\n"
                                   "            echo 'ok'\n        }\n    }\n}\n"),
        [(11, 9, "ModelValidatorImpl.InvalidBuildCondition")],
    ),
    # ModelParser.parseBuildCondition: InvalidBuildCondition (a condition needs a block)
    "post-condition-without-block": (
        _pipeline(_stage("Build", f"{_STEPS}\npost {{\n    failure {{\n        echo 'x'\n"
                                  "    }\n    always echo('done')\n}")),
        [(12, 17, "ModelParser.InvalidBuildCondition")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTBuildConditionsContainer): DuplicateBuildCondition
    "duplicate-post-condition": (
        _pipeline(_stage("Build", f"{_STEPS}\npost {{\n    always {{\n        echo 'a'\n"
                                  "    }\n    always {\n        echo 'b'\n    }\n}")),
        [(12, 17, "ModelValidatorImpl.DuplicateBuildCondition")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTPostBuild...): EmptySection "post"
    "empty-post": (
        _pipeline(_BUILD).replace("}\n}\n", "}\n    post {\n    }\n}\n"),
        [(10, 5, "ModelValidatorImpl.EmptySection")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTOptions): EmptySection "options"
    "empty-options": (
        _pipeline(_BUILD, top="    agent any\n    options {\n    }\n"),
        [(3, 5, "ModelValidatorImpl.EmptySection")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTEnvironment): NoEnvVars
    "empty-environment": (
        _pipeline(_stage("Build", f"environment {{\n}}\n{_STEPS}")),
        [(5, 13, "ModelValidatorImpl.NoEnvVars")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTTools): NoTools
    "empty-tools": (
        _pipeline(_BUILD, top="    agent any\n    tools {\n    }\n"),
        [(3, 5, "ModelValidatorImpl.NoTools")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTWhen): EmptyWhen (beforeAgent is no condition)
    "when-without-condition": (
        _pipeline(_stage("Deploy", f"when {{\n    beforeAgent true\n}}\n{_STEPS}")),
        [(5, 13, "ModelValidatorImpl.EmptyWhen")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTWhenCondition): UnknownWhenConditional
    "unknown-when-condition": (
        _pipeline(_stage("Deploy", f"when {{\n    branchName 'main'\n}}\n{_STEPS}")),
        [(6, 17, "ModelValidatorImpl.UnknownWhenConditional")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTWhenCondition): UnknownWhenConditional for a
    # nested condition too
    "unknown-nested-when-condition": (
        _pipeline(_stage("Deploy", f"when {{\n    anyOf {{\n        branchName 'main'\n    }}\n}}\n"
                                   f"{_STEPS}")),
        [(7, 21, "ModelValidatorImpl.UnknownWhenConditional")],
    ),
    # ... NestedWhenNoArgs: allOf/anyOf/not take conditions, not arguments
    "nested-when-with-arguments": (
        _pipeline(_stage("Deploy", "when {\n    allOf('main') {\n        branch 'main'\n"
                                   f"    }}\n}}\n{_STEPS}")),
        [(6, 17, "ModelValidatorImpl.NestedWhenNoArgs")],
    ),
    # ... NestedWhenWithoutChildren (anyOf: one or more)
    "nested-when-without-children": (
        _pipeline(_stage("Deploy", f"when {{\n    anyOf {{\n    }}\n}}\n{_STEPS}")),
        [(6, 17, "ModelValidatorImpl.NestedWhenWithoutChildren")],
    ),
    # ... NestedWhenWrongChildrenCount (not: exactly one)
    "not-with-two-conditions": (
        _pipeline(_stage("Deploy", f"when {{\n    not {{\n        branch 'a'\n        branch 'b'\n"
                                   f"    }}\n}}\n{_STEPS}")),
        [(6, 17, "ModelValidatorImpl.NestedWhenWrongChildrenCount")],
    ),
    # ... NoNestedWhenAllowed (only allOf, anyOf and not nest conditions)
    "branch-with-nested-condition": (
        _pipeline(_stage("Deploy", f"when {{\n    branch {{\n        tag 'v*'\n    }}\n}}\n"
                                   f"{_STEPS}")),
        [(6, 17, "ModelValidatorImpl.NoNestedWhenAllowed")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTStageInput): MissingInputMessage
    "input-without-message": (
        _pipeline(_stage("Deploy", f"input {{\n    ok 'Deploy'\n}}\n{_STEPS}")),
        [(5, 13, "ModelValidatorImpl.MissingInputMessage")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTStages): DuplicateStageName, siblings of
    # the pipeline's stages block
    "duplicate-stage-names": (
        _pipeline(_BUILD + _BUILD), [(9, 9, "ModelValidatorImpl.DuplicateStageName")],
    ),
    # ... siblings of one parallel block (ModelASTParallel is validated as ModelASTStages)
    "duplicate-parallel-branches": (
        _pipeline(_stage("Checks", "parallel {\n" + _stage("Lint", _STEPS, "    ")
                                   + _stage("Lint", _STEPS, "    ") + "}")),
        [(11, 17, "ModelValidatorImpl.DuplicateStageName")],
    ),
    # ... siblings of a matrix's stages block (ModelASTMatrix validates its ModelASTStages)
    "duplicate-matrix-stages": (
        _pipeline(_stage("Cells", "matrix {\n" + _AXES + "\nstages {\n"
                                  + _stage("Cell", _STEPS, "    ") + _stage("Cell", _STEPS, "    ")
                                  + "}\n}")),
        [(18, 17, "ModelValidatorImpl.DuplicateStageName")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTStage, isWithinParallel):
    # NoNestedWithinNestedStages, for parallel in parallel ...
    "nested-parallel": (
        _pipeline(_stage("Outer", "parallel {\n" + _stage("Inner", "parallel {\n"
                  + _stage("Leaf", _STEPS, "    ") + "}", "    ") + "}")),
        [(7, 21, "ModelValidatorImpl.NoNestedWithinNestedStages")],
    ),
    # ... for parallel inside the sequential stages of a parallel branch (isWithinParallel is
    # passed down through nested stages) ...
    "parallel-in-stages-in-parallel": (
        _pipeline(_stage("Outer", "parallel {\n" + _stage("Branch", "stages {\n"
                  + _stage("Inner", "parallel {\n" + _stage("Leaf", _STEPS, "    ") + "}",
                           "    ") + "}", "    ") + "}")),
        [(9, 29, "ModelValidatorImpl.NoNestedWithinNestedStages")],
    ),
    # ... and for parallel in a matrix cell.
    "parallel-in-matrix": (
        _pipeline(_stage("Cells", "matrix {\n" + _AXES + "\nstages {\n"
                  + _stage("Cell", "parallel {\n" + _stage("Leaf", _STEPS, "    ") + "}", "    ")
                  + "}\n}")),
        [(14, 21, "ModelValidatorImpl.NoNestedWithinNestedStages")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTStage): AgentInNestedStages, ToolsInNestedStages
    "agent-and-tools-beside-parallel": (
        _pipeline(_stage("Checks", "agent any\ntools {\n    jdk 'jdk-21'\n}\nparallel {\n"
                                   + _stage("A", _STEPS, "    ") + "}")),
        [(5, 13, "ModelValidatorImpl.AgentInNestedStages"),
         (6, 13, "ModelValidatorImpl.ToolsInNestedStages")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTMatrix): RequiredSection "axes"
    "matrix-without-axes": (
        _pipeline(_stage("Cells", "matrix {\nstages {\n" + _stage("Cell", _STEPS, "    ")
                                  + "}\n}")),
        [(5, 13, "ModelValidatorImpl.RequiredSection")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTAxisContainer): NoAxes
    "matrix-empty-axes": (
        _pipeline(_stage("Cells", "matrix {\naxes {\n}\nstages {\n"
                                  + _stage("Cell", _STEPS, "    ") + "}\n}")),
        [(6, 13, "ModelValidatorImpl.NoAxes")],
    ),
    # ModelParser.parseAxis: ExpectedBlockFor "axis"
    "axis-without-block": (
        _pipeline(_stage("Cells", "matrix {\naxes {\n    axis 'OS'\n}\nstages {\n"
                                  + _stage("Cell", _STEPS, "    ") + "}\n}")),
        [(7, 17, "ModelParser.ExpectedBlockFor")],
    ),
    # ModelParser.parseAgent: InvalidAgent
    "agent-word": (
        _pipeline(_BUILD, top="    agent anything\n"), [(2, 5, "ModelParser.InvalidAgent")],
    ),
    # ModelParser.parseAgent: ExpectedAgent (an empty agent block)
    "agent-empty-block": (
        _pipeline(_BUILD, top="    agent {\n    }\n"), [(2, 5, "ModelParser.ExpectedAgent")],
    ),
    # ModelParser.parseAgent: OneAgentMax
    "agent-two-types": (
        _pipeline(_BUILD, top="    agent {\n        label 'linux'\n        docker 'maven:3'\n"
                              "    }\n"),
        [(4, 9, "ModelParser.OneAgentMax")],
    ),
    # ModelValidatorImpl.validateElement(ModelASTBranch): NoSteps
    "empty-steps": (
        _pipeline(_stage("Build", "steps {\n}")), [(5, 13, "ModelValidatorImpl.NoSteps")],
    ),
}  # fmt: skip

# Valid declarative shapes Jenkins runs: no structure error may be reported for them.
VALID_SHAPES: dict[str, str] = {
    # Same inner names in two sequential nested stages blocks (issue 12's real file).
    "same-names-in-nested-stages": _pipeline(
        _stage("JDK 21", "stages {\n" + _stage("Build", _STEPS, "    ") + "}")
        + _stage("JDK 17", "stages {\n" + _stage("Build", _STEPS, "    ") + "}")
    ),
    # An outer stage and the stages of its parallel branches share names.
    "same-names-in-parallel-branches": _pipeline(
        _stage("Build", "failFast true\nparallel {\n"
               + _stage("JDK 21", "stages {\n" + _stage("Build", _STEPS, "    ") + "}", "    ")
               + _stage("JDK 17", "stages {\n" + _stage("Build", _STEPS, "    ") + "}", "    ")
               + "}")
    ),
    # A matrix's cell stages share a name with a pipeline stage.
    "same-names-in-matrix": _pipeline(
        _BUILD + _stage("Cells", "matrix {\n" + _AXES + "\nstages {\n"
                        + _stage("Build", _STEPS, "    ") + "}\n}")
    ),
    # A bare identifier is a stage name to Jenkins' parser (matchStringLiteral).
    "identifier-stage-name": _pipeline(_BUILD.replace("stage('Build')", "stage(Build)")),
    # `agent none` at the top, an agent per stage, a stage-level input.
    "agent-none-with-stage-agents": _pipeline(
        _stage("Build", "agent {\n    docker { image 'node:20' }\n}\n" + _STEPS)
        + _stage("Deploy", "agent {\n    label 'deploy'\n}\ninput {\n    message 'Go?'\n}\n"
                 + _STEPS),
        top="    agent none\n",
    ),
    # `failFast` beside parallel, post at stage level, when with nested conditions.
    "failfast-post-when": _pipeline(
        _stage("Checks", "when {\n    beforeAgent true\n    allOf {\n        branch 'main'\n"
               "        not { changeRequest() }\n    }\n}\nfailFast true\nparallel {\n"
               + _stage("A", _STEPS, "    ") + _stage("B", _STEPS, "    ") + "}\n"
               "post {\n    always {\n        echo 'x'\n    }\n    cleanup {\n        deleteDir()\n"
               "    }\n}")
    ),
}  # fmt: skip
