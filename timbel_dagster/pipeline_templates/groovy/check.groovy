// Compile Groovy sources to the CONVERSION phase (parse and build the AST, no class
// resolution, so shared-library imports and @Library annotations need nothing on the
// classpath) and print one JSON line per source: {"id": ..., "errors": [{"line", "column",
// "message"}]}. Reads a JSON list of {"id", "text"} on stdin so that one JVM checks many
// files; the texts travel in UTF-8 JSON, so no file name has to survive the JVM's locale.
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.MultipleCompilationErrorsException
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.messages.ExceptionMessage
import org.codehaus.groovy.control.messages.SimpleMessage
import org.codehaus.groovy.control.messages.SyntaxErrorMessage

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

def out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, 'UTF-8')
def sources = new JsonSlurper().parse(new InputStreamReader(System.in, 'UTF-8'))
sources.each { source ->
    def errors = []
    def config = new CompilerConfiguration()
    config.tolerance = 10
    def unit = new CompilationUnit(config)
    try {
        unit.addSource("Jenkinsfile${source.id}.groovy", source.text as String)
        unit.compile(Phases.CONVERSION)
    } catch (MultipleCompilationErrorsException e) {
        errors.addAll(e.errorCollector.errors.collect { describe(it) })
    } catch (Exception e) {
        errors << [line: null, column: null, message: e.toString()]
    }
    out.println(JsonOutput.toJson([id: source.id, errors: errors]))
}
