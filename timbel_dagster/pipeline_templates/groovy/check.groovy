// Compile Groovy sources to the CONVERSION phase (parse and build the AST, no class
// resolution, so shared-library imports and @Library annotations need nothing on the
// classpath) and print one JSON line per source: {"id": ..., "errors": [{"line", "column",
// "message"}], "refused": [{"line", "column", "what", "written", "name"}]}. Reads
// {"refused": [annotation class names], "sources": [{"id", "text"}]} as JSON on stdin so that
// one JVM checks many files; the texts travel in UTF-8 JSON, so no file name has to survive
// the JVM's locale.
//
// The sources are untrusted, and compiling is not a safe act by itself (see groovy_refused.py):
// no global AST transformation runs here (every one on the classpath is disabled, Grab's among
// them; none is needed to build the AST), and the uses of the refused annotations are listed
// for Python to report.
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import org.codehaus.groovy.ast.AnnotatedNode
import org.codehaus.groovy.ast.AnnotationNode
import org.codehaus.groovy.ast.ClassCodeVisitorSupport
import org.codehaus.groovy.ast.ImportNode
import org.codehaus.groovy.ast.ModuleNode
import org.codehaus.groovy.ast.expr.AnnotationConstantExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.ListExpression
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.MultipleCompilationErrorsException
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.SourceUnit
import org.codehaus.groovy.control.messages.ExceptionMessage
import org.codehaus.groovy.control.messages.SimpleMessage
import org.codehaus.groovy.control.messages.SyntaxErrorMessage

GLOBAL_TRANSFORMS = 'META-INF/services/org.codehaus.groovy.transform.ASTTransformation'
NESTED_TOO_DEEP = 'nested too deeply for the Groovy compiler (its parser ran out of stack)'

def describe(message) {
    if (message instanceof SyntaxErrorMessage) {
        def cause = message.cause
        return [line: cause.line, column: cause.startColumn, message: cause.originalMessage]
    }
    if (message instanceof ExceptionMessage) {
        return [line: null, column: null, message: message.cause.toString()]
    }
    if (message instanceof SimpleMessage) {
        return [line: null, column: null, message: message.message]
    }
    return [line: null, column: null, message: message.toString()]
}

// Every global transformation the classpath declares (Groovy's own Grab and AstBuilder, and
// whatever else a jar brings), so that none of them runs on these sources.
Set<String> globalTransforms() {
    def names = ['groovy.grape.GrabAnnotationTransformation'] as Set<String>
    getClass().classLoader.getResources(GLOBAL_TRANSFORMS).each { url ->
        url.getText('UTF-8').eachLine { line ->
            def name = line.replaceFirst(/#.*/, '').trim()
            if (name) names << name
        }
    }
    return names
}

// Finds the refused annotations (on imports, classes, fields, methods, parameters, local
// variables, closure parameters and inside other annotations), the imports of them, and the
// `extensions` member (@CompileStatic/@TypeChecked load and run a script with it).
class Refusals extends ClassCodeVisitorSupport {
    SourceUnit sourceUnit
    ModuleNode module
    Set<String> refused
    List found = []

    // The same rule as groovy_refused.refused_name: a full name, an imported name or alias,
    // or a simple name.
    String refusedName(String written) {
        def name = module.getImport(written)?.type?.name ?: written
        if (refused.contains(name)) return name
        if (!name.contains('.')) return refused.find { it.endsWith(".$name") }
        return null
    }

    void add(node, Map what) {
        found << [line: node.lineNumber > 0 ? node.lineNumber : null,
                  column: node.columnNumber > 0 ? node.columnNumber : null] + what
    }

    void checkAnnotation(AnnotationNode annotation) {
        def written = annotation.classNode.name
        def name = refusedName(written)
        if (name != null) {
            add(annotation, [what: 'annotation', written: written, name: name])
        } else if (annotation.getMember('extensions') != null) {
            add(annotation, [what: 'extensions', written: written])
        }
        annotation.members.values().each { checkNested(it) }
    }

    void checkNested(Expression value) {
        if (value instanceof AnnotationConstantExpression) {
            checkAnnotation((AnnotationNode) value.value)
        } else if (value instanceof ListExpression) {
            value.expressions.each { checkNested(it) }
        }
    }

    void checkImport(ImportNode node) {
        def name = node.type?.name
        if (name != null && refused.contains(name)) {
            add(node, [what: 'import', written: name, name: name])
        }
    }

    void visitModule() {
        module.imports.each { checkImport(it) }
        module.staticImports.values().each { checkImport(it) }
        visitImports(module)
        if (module.package != null) visitAnnotations(module.package)
        module.classes.each { visitClass(it) }
    }

    @Override
    void visitAnnotations(AnnotatedNode node) {
        node.annotations.each { checkAnnotation(it) }
        super.visitAnnotations(node)
    }

    @Override
    void visitClosureExpression(ClosureExpression closure) {
        closure.parameters?.each { visitAnnotations(it) }
        super.visitClosureExpression(closure)
    }

    @Override
    protected SourceUnit getSourceUnit() { sourceUnit }
}

def out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, 'UTF-8')
def request = new JsonSlurper().parse(new InputStreamReader(System.in, 'UTF-8'))
def refusedNames = request.refused as Set<String>
def disabled = globalTransforms()
request.sources.each { source ->
    def errors = []
    def refused = []
    def config = new CompilerConfiguration()
    config.tolerance = 10
    config.disabledGlobalASTTransformations = disabled
    def unit = new CompilationUnit(config)
    try {
        def sourceUnit = unit.addSource("Jenkinsfile${source.id}.groovy", source.text as String)
        unit.compile(Phases.CONVERSION)
        def visitor = new Refusals(sourceUnit: sourceUnit, module: sourceUnit.AST,
                refused: refusedNames)
        visitor.visitModule()
        refused = visitor.found
    } catch (MultipleCompilationErrorsException e) {
        errors.addAll(e.errorCollector.errors.collect { describe(it) })
    } catch (Exception e) {
        errors << [line: null, column: null, message: e.toString()]
    } catch (StackOverflowError ignored) {
        // Groovy's parser recurses per nesting level: a few KB of brackets exhaust the stack.
        // That file is invalid; the batch goes on (the stack has unwound).
        errors << [line: null, column: null, message: NESTED_TOO_DEEP]
    }
    out.println(JsonOutput.toJson([id: source.id, errors: errors, refused: refused]))
}
