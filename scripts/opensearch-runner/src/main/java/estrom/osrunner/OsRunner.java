package estrom.osrunner;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.percolator.PercolatorPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single OpenSearch 2.19 node for tests, built from the Maven Central artifacts (the twin of
 * scripts/es-runner's EsRunner).
 *
 * <p>Arguments are settings, {@code key=value} each ({@code path.home} is required); they override
 * the defaults below.  The node runs the server plus the Netty 4 transport (HTTP) and the percolator
 * module; the standard analyzer and {@code query_string} live in the server itself.  No security
 * plugin (so no TLS, no users), no bootstrap checks: it listens on loopback only.  SIGTERM closes
 * the node cleanly.
 */
public final class OsRunner {

    private static final String LOG4J2 = String.join("\n",
        "status = error",
        "appender.console.type = Console",
        "appender.console.name = console",
        "appender.console.layout.type = PatternLayout",
        "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n",
        "rootLogger.level = info",
        "rootLogger.appenderRef.console.ref = console",
        "logger.deprecation.name = org.opensearch.deprecation",
        "logger.deprecation.level = error",
        "");

    private static final List<Class<? extends Plugin>> PLUGINS = Arrays.asList(Netty4Plugin.class, PercolatorPlugin.class);

    /** Node's plugin-list constructor is protected: this is how a classpath node gets its modules. */
    private static final class ClasspathNode extends Node {
        ClasspathNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    private OsRunner() {
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder()
            .put("cluster.name", "estrom-test")
            .put("node.name", "estrom-test-node")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", "9200")
            .put("transport.port", "9300")
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            .put("action.auto_create_index", "false")
            // Test machines often have full-ish disks; the watermarks would make indexes read-only.
            .put("cluster.routing.allocation.disk.threshold_enabled", "false");
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("arguments are key=value settings, not " + arg);
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Settings settings = builder.build();
        String home = settings.get("path.home");
        if (home == null) {
            throw new IllegalArgumentException("path.home=<dir> is required");
        }
        Path config = Paths.get(home, "config");
        Files.createDirectories(config);
        Files.write(config.resolve("log4j2.properties"), LOG4J2.getBytes(StandardCharsets.UTF_8));

        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), config, () -> settings.get("node.name"));
        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName(environment.settings().get("node.name"));
        LogConfigurator.configure(environment);

        Node node = new ClasspathNode(environment, PLUGINS);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (IOException | InterruptedException e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "estrom-opensearch-shutdown"));
        node.start();
        System.out.println("opensearch-runner: node started, http.port=" + settings.get("http.port"));
        closed.await();
    }
}
