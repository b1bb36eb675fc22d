/*
 * Enginy "Custom CRM API" server, written the way a Spring Boot developer writes one, without Spring:
 * the JDK's HttpServer stands in for embedded Tomcat, a Filter for the security filter, a tiny dispatcher
 * for DispatcherServlet + BasicErrorController, and Jackson (configured as Spring Boot configures it) for
 * the message converters. State lives in in-memory repositories.
 *
 *   javac -cp <jackson jars> -d OUT SpringStyleCrm.java
 *   java  -cp OUT:<jackson jars> SpringStyleCrm --port N --key KEY [--key-header NAME] [--bug ID ...]
 *   java  -cp OUT:<jackson jars> SpringStyleCrm --list-bugs
 */

import com.fasterxml.jackson.annotation.JsonAnySetter;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.annotation.JsonSerialize;
import com.fasterxml.jackson.databind.deser.std.StdScalarDeserializer;
import com.fasterxml.jackson.databind.module.SimpleModule;
import com.fasterxml.jackson.databind.ser.std.StdSerializer;
import com.sun.net.httpserver.Filter;
import com.sun.net.httpserver.HttpContext;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Instant;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Date;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

public class SpringStyleCrm {

    // =====================================================================================================
    // Bugs (--bug ID): each one is a mistake a hurried Spring developer makes; off by default.
    // =====================================================================================================

    enum Bug {
        HEALTH_WITHOUT_KEY("health-without-key",
                "The ApiKeyFilter's shouldNotFilter() skips /health, the way Spring Boot Actuator leaves "
                        + "/actuator/health public. The developer's curl sent the key anyway and got 200.",
                "The server must check the key on every call and answer 401 Unauthorized if it is missing or wrong.",
                "AUTH-MISSING-KEY"),
        TASK_IDS_AS_NUMBERS("task-ids-as-numbers",
                "The Task entity got a Long id from a sequence (an AtomicLong standing in for @GeneratedValue), and "
                        + "Jackson writes it as a JSON number (\"id\": 1). curl showed an id and GET /tasks/1 worked.",
                "id string ✅ Yes Unique identifier for the task",
                "TASK-CREATE-RETURNS-ID"),
        NULL_KEYS_MATCH("null-keys-match",
                "The sync lookup indexes are HashMaps, which accept a null key: contacts and companies without an "
                        + "email, LinkedIn URL or domain are filed under null, so an incoming record that lacks one "
                        + "of them 'matches' the first stored record that lacks it too. The curl test synced a "
                        + "contact carrying both email and LinkedIn URL.",
                "Response (200): only matched contacts; unmatched ones are simply left out (no error).",
                "CONTACT-SYNC-OMITS-UNMATCHED"),
        DATES_AS_TIMESTAMPS("dates-as-timestamps",
                "The ObjectMapper was built by hand with the java.time module but without Spring Boot's "
                        + "WRITE_DATES_AS_TIMESTAMPS=false, so dueDate, completedAt and occurredAt come out as epoch "
                        + "decimals (1705312800.000000000). curl showed completed:true and a completedAt value.",
                "completedAt string (ISO 8601) No When the task was completed",
                "TIMESTAMPS-ISO8601"),
        ACTIVITY_BODY_VARCHAR_255("activity-body-varchar-255",
                "The activity 'table' keeps JPA's default @Column length of 255: a longer body fails the insert "
                        + "with a DataIntegrityViolationException nobody maps, so the answer is 500. The curl test "
                        + "logged a one-line LinkedIn message.",
                "body | string | No | Activity body or message content (may include HTML)",
                "ACTIVITY-RICH-CONTENT"),
        UPDATE_UNKNOWN_404("update-unknown-404",
                "PUT /contacts and PUT /companies load each record with findById(crmId).orElseThrow(() -> new "
                        + "ResponseStatusException(NOT_FOUND)), so one unknown crmId turns the whole batch into a "
                        + "404. The curl test updated one contact it had just created.",
                "PUT /contacts updates records identified by crmId and returns 200 with a per-item result; an "
                        + "unknown crmId does not fail the whole request.",
                "CONTACT-UPDATE-UNKNOWN-PARTIAL"),
        DOMAIN_KEEPS_PATH("domain-keeps-path",
                "normalizeDomain() follows the 'remove www., protocol, trailing slashes' sentence: it strips "
                        + "trailing slashes but keeps the path, so https://www.Example.com/about becomes "
                        + "example.com/about and misses the stored example.com. The curl test synced a bare domain.",
                "Domain normalisation rule given by the docs: lower-case → strip a leading http:// / https:// and "
                        + "a leading www. → drop everything from the first / → trim.",
                "COMPANY-SYNC-MATCHES-DOMAIN");

        final String id;
        final String summary;
        final String breaks;
        final String rule;

        Bug(String id, String summary, String breaks, String rule) {
            this.id = id;
            this.summary = summary;
            this.breaks = breaks;
            this.rule = rule;
        }

        static Optional<Bug> byId(String id) {
            for (Bug b : values()) {
                if (b.id.equals(id)) {
                    return Optional.of(b);
                }
            }
            return Optional.empty();
        }
    }

    static final class Bugs {
        private static final Set<Bug> ACTIVE = EnumSet.noneOf(Bug.class);

        static boolean on(Bug bug) {
            return ACTIVE.contains(bug);
        }
    }

    // =====================================================================================================
    // Configuration ("application.properties")
    // =====================================================================================================

    static final class AppProperties {
        int port = -1;
        String apiKey;
        String apiKeyHeader = "X-API-Key";
        /** Upper bound on a request body; Enginy sends up to 100 fully filled leads or long HTML emails. */
        long maxRequestBytes = 50L * 1024 * 1024;
    }

    // =====================================================================================================
    // Jackson, configured the way Spring Boot's JacksonAutoConfiguration configures it
    // =====================================================================================================

    static ObjectMapper objectMapper() {
        ObjectMapper mapper = new ObjectMapper();
        mapper.registerModule(javaTimeModule());
        mapper.disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);
        if (!Bugs.on(Bug.DATES_AS_TIMESTAMPS)) {
            mapper.disable(SerializationFeature.WRITE_DATES_AS_TIMESTAMPS);
        }
        if (Bugs.on(Bug.TASK_IDS_AS_NUMBERS)) {
            mapper.addMixIn(Task.class, LongIdMixin.class);
        }
        return mapper;
    }

    /** The Instant part of jackson-datatype-jsr310 (not packaged by Debian), with the same behaviour. */
    static SimpleModule javaTimeModule() {
        SimpleModule module = new SimpleModule("JavaTimeModule");
        module.addSerializer(Instant.class, new InstantSerializer());
        module.addDeserializer(Instant.class, new InstantDeserializer());
        return module;
    }

    static final class InstantSerializer extends StdSerializer<Instant> {
        InstantSerializer() {
            super(Instant.class);
        }

        @Override
        public void serialize(Instant value, JsonGenerator gen, SerializerProvider provider) throws IOException {
            if (provider.isEnabled(SerializationFeature.WRITE_DATES_AS_TIMESTAMPS)) {
                if (provider.isEnabled(SerializationFeature.WRITE_DATE_TIMESTAMPS_AS_NANOSECONDS)) {
                    gen.writeNumber(BigDecimal.valueOf(value.getEpochSecond())
                            .add(BigDecimal.valueOf(value.getNano(), 9)));
                } else {
                    gen.writeNumber(value.toEpochMilli());
                }
            } else {
                gen.writeString(value.toString());
            }
        }
    }

    static final class InstantDeserializer extends StdScalarDeserializer<Instant> {
        InstantDeserializer() {
            super(Instant.class);
        }

        @Override
        public Instant deserialize(JsonParser p, DeserializationContext ctxt) throws IOException {
            if (p.hasToken(JsonToken.VALUE_STRING)) {
                String text = p.getText().trim();
                if (text.isEmpty()) {
                    return null;
                }
                try {
                    return DateTimeFormatter.ISO_OFFSET_DATE_TIME.parse(text, Instant::from);
                } catch (DateTimeParseException e) {
                    return (Instant) ctxt.handleWeirdStringValue(Instant.class, text, "not an ISO-8601 date-time");
                }
            }
            if (p.hasToken(JsonToken.VALUE_NUMBER_INT)) {
                return Instant.ofEpochSecond(p.getLongValue());
            }
            if (p.hasToken(JsonToken.VALUE_NUMBER_FLOAT)) {
                BigDecimal seconds = p.getDecimalValue();
                long whole = seconds.longValue();
                int nanos = seconds.subtract(BigDecimal.valueOf(whole)).movePointRight(9).intValue();
                return Instant.ofEpochSecond(whole, nanos);
            }
            return (Instant) ctxt.handleUnexpectedToken(Instant.class, p);
        }
    }

    /** Mix-in used by the task-ids-as-numbers bug: the id is a Long as far as Jackson is concerned. */
    abstract static class LongIdMixin {
        @JsonSerialize(using = LongIdSerializer.class)
        abstract String getId();
    }

    static final class LongIdSerializer extends StdSerializer<String> {
        LongIdSerializer() {
            super(String.class);
        }

        @Override
        public void serialize(String value, JsonGenerator gen, SerializerProvider provider) throws IOException {
            gen.writeNumber(Long.parseLong(value));
        }
    }

    // =====================================================================================================
    // Web layer plumbing: exceptions, ResponseEntity, the error body of BasicErrorController
    // =====================================================================================================

    static class ResponseStatusException extends RuntimeException {
        final int status;

        ResponseStatusException(int status, String reason) {
            super(reason);
            this.status = status;
        }
    }

    static final class HttpMessageNotReadableException extends ResponseStatusException {
        HttpMessageNotReadableException(String reason) {
            super(400, reason);
        }
    }

    static final class MethodArgumentNotValidException extends ResponseStatusException {
        MethodArgumentNotValidException(List<String> violations) {
            super(400, "Validation failed: " + String.join("; ", violations));
        }
    }

    static final class HttpMediaTypeNotSupportedException extends ResponseStatusException {
        HttpMediaTypeNotSupportedException(String contentType) {
            super(415, "Content-Type '" + contentType + "' is not supported");
        }
    }

    static final class PayloadTooLargeException extends ResponseStatusException {
        PayloadTooLargeException() {
            super(413, "Maximum upload size exceeded");
        }
    }

    static final class HttpRequestMethodNotSupportedException extends ResponseStatusException {
        final Set<String> allowed;

        HttpRequestMethodNotSupportedException(String method, Set<String> allowed) {
            super(405, "Request method '" + method + "' is not supported");
            this.allowed = allowed;
        }
    }

    /** What Spring's DataAccessException translation would throw for a constraint violation. */
    static final class DataIntegrityViolationException extends RuntimeException {
        DataIntegrityViolationException(String message) {
            super(message);
        }
    }

    record ResponseEntity(int status, Object body, Map<String, String> headers) {
        static ResponseEntity ok(Object body) {
            return new ResponseEntity(200, body, Map.of());
        }

        static ResponseEntity created(Object body) {
            return new ResponseEntity(201, body, Map.of());
        }
    }

    /** Spring Boot's DefaultErrorAttributes (message, errors and trace are not included by default). */
    record ErrorBody(Date timestamp, int status, String error, String path) {
    }

    static String reasonPhrase(int status) {
        return switch (status) {
            case 400 -> "Bad Request";
            case 401 -> "Unauthorized";
            case 403 -> "Forbidden";
            case 404 -> "Not Found";
            case 405 -> "Method Not Allowed";
            case 406 -> "Not Acceptable";
            case 413 -> "Payload Too Large";
            case 415 -> "Unsupported Media Type";
            default -> "Internal Server Error";
        };
    }

    static ResponseEntity errorResponse(int status, String path) {
        return new ResponseEntity(status, new ErrorBody(new Date(), status, reasonPhrase(status), path), Map.of());
    }

    static final class ResponseWriter {
        private final ObjectMapper mapper;

        ResponseWriter(ObjectMapper mapper) {
            this.mapper = mapper;
        }

        void write(HttpExchange exchange, ResponseEntity response) throws IOException {
            byte[] bytes = mapper.writeValueAsBytes(response.body());
            exchange.getResponseHeaders().set("Content-Type", "application/json");
            response.headers().forEach((k, v) -> exchange.getResponseHeaders().set(k, v));
            if (!swallowRequestBody(exchange)) {
                exchange.getResponseHeaders().set("Connection", "close");
            }
            if ("HEAD".equals(exchange.getRequestMethod())) {
                exchange.sendResponseHeaders(response.status(), -1);
                return;
            }
            exchange.sendResponseHeaders(response.status(), bytes.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(bytes);
            }
        }
    }

    /**
     * Like Tomcat's maxSwallowSize: read what the handler left unread so the keep-alive connection stays usable
     * (the JDK server only drains 64 KB itself and then drops the connection without saying so).
     */
    static boolean swallowRequestBody(HttpExchange exchange) {
        if (exchange.getResponseHeaders().containsKey("Connection")) {
            return false;
        }
        byte[] sink = new byte[16 * 1024];
        long left = MAX_SWALLOW_BYTES;
        try {
            InputStream in = exchange.getRequestBody();
            int n;
            while ((n = in.read(sink)) != -1) {
                left -= n;
                if (left < 0) {
                    return false;
                }
            }
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    static final long MAX_SWALLOW_BYTES = 2L * 1024 * 1024;

    /** Bean Validation stand-in: request DTOs list their constraint violations, the dispatcher rejects with 400. */
    interface Validated {
        List<String> violations();
    }

    static boolean isBlank(String s) {
        return s == null || s.isBlank();
    }

    // =====================================================================================================
    // Security: the API-key filter (a OncePerRequestFilter in a Spring app)
    // =====================================================================================================

    static final class ApiKeyFilter extends Filter {
        private final AppProperties props;
        private final ResponseWriter writer;

        ApiKeyFilter(AppProperties props, ResponseWriter writer) {
            this.props = props;
            this.writer = writer;
        }

        @Override
        public String description() {
            return "API key filter";
        }

        private boolean shouldNotFilter(HttpExchange exchange) {
            return Bugs.on(Bug.HEALTH_WITHOUT_KEY) && "/health".equals(exchange.getRequestURI().getRawPath());
        }

        @Override
        public void doFilter(HttpExchange exchange, Chain chain) throws IOException {
            if (shouldNotFilter(exchange) || hasValidKey(exchange)) {
                chain.doFilter(exchange);
                return;
            }
            try {
                writer.write(exchange, errorResponse(401, exchange.getRequestURI().getRawPath()));
            } finally {
                exchange.close();
            }
        }

        private boolean hasValidKey(HttpExchange exchange) {
            // com.sun.net.httpserver.Headers looks names up case-insensitively, as HTTP requires.
            String presented = exchange.getRequestHeaders().getFirst(props.apiKeyHeader);
            return presented != null && MessageDigest.isEqual(
                    presented.getBytes(StandardCharsets.UTF_8), props.apiKey.getBytes(StandardCharsets.UTF_8));
        }
    }

    // =====================================================================================================
    // DispatcherServlet stand-in: request mappings, body conversion, exception resolution
    // =====================================================================================================

    @FunctionalInterface
    interface HandlerMethod {
        ResponseEntity handle(WebRequest request) throws Exception;
    }

    static final class WebRequest {
        private final HttpExchange exchange;
        private final Map<String, String> pathVariables;
        private final ObjectMapper mapper;
        private final long maxBytes;

        WebRequest(HttpExchange exchange, Map<String, String> pathVariables, ObjectMapper mapper, long maxBytes) {
            this.exchange = exchange;
            this.pathVariables = pathVariables;
            this.mapper = mapper;
            this.maxBytes = maxBytes;
        }

        String pathVariable(String name) {
            return pathVariables.get(name);
        }

        /** @RequestBody @Valid T: content negotiation, Jackson conversion, validation. */
        <T> T body(Class<T> type) throws IOException {
            byte[] raw = readBody();
            String contentType = exchange.getRequestHeaders().getFirst("Content-Type");
            if (contentType == null) {
                if (raw.length == 0) {
                    throw new HttpMessageNotReadableException("Required request body is missing");
                }
                throw new HttpMediaTypeNotSupportedException("application/octet-stream");
            }
            if (!isJson(contentType)) {
                throw new HttpMediaTypeNotSupportedException(contentType);
            }
            if (raw.length == 0) {
                throw new HttpMessageNotReadableException("Required request body is missing");
            }
            T value;
            try {
                value = mapper.readValue(raw, type);
            } catch (JsonProcessingException e) {
                throw new HttpMessageNotReadableException("JSON parse error: " + e.getOriginalMessage());
            }
            if (value == null) {
                throw new HttpMessageNotReadableException("Required request body is missing");
            }
            if (value instanceof Validated validated) {
                List<String> violations = validated.violations();
                if (!violations.isEmpty()) {
                    throw new MethodArgumentNotValidException(violations);
                }
            }
            return value;
        }

        private static boolean isJson(String contentType) {
            String mediaType = contentType.split(";", 2)[0].trim().toLowerCase(Locale.ROOT);
            return mediaType.equals("application/json")
                    || (mediaType.startsWith("application/") && mediaType.endsWith("+json"));
        }

        private byte[] readBody() throws IOException {
            String declared = exchange.getRequestHeaders().getFirst("Content-Length");
            if (declared != null) {
                try {
                    if (Long.parseLong(declared.trim()) > maxBytes) {
                        throw new PayloadTooLargeException();
                    }
                } catch (NumberFormatException ignored) {
                    // the HTTP server has already framed the body; count it below
                }
            }
            InputStream in = exchange.getRequestBody();
            ByteArrayOutputStream buffer = new ByteArrayOutputStream();
            byte[] chunk = new byte[16 * 1024];
            long total = 0;
            int n;
            while ((n = in.read(chunk)) != -1) {
                total += n;
                if (total > maxBytes) {
                    throw new PayloadTooLargeException();
                }
                buffer.write(chunk, 0, n);
            }
            return buffer.toByteArray();
        }
    }

    static final class RequestMapping {
        final String method;
        final String pattern;
        final Pattern regex;
        final List<String> variables = new ArrayList<>();
        final HandlerMethod handler;

        RequestMapping(String method, String pattern, HandlerMethod handler) {
            this.method = method;
            this.pattern = pattern;
            this.handler = handler;
            StringBuilder re = new StringBuilder();
            Matcher m = Pattern.compile("\\{(\\w+)}").matcher(pattern);
            int last = 0;
            while (m.find()) {
                re.append(Pattern.quote(pattern.substring(last, m.start()))).append("([^/]+)");
                variables.add(m.group(1));
                last = m.end();
            }
            re.append(Pattern.quote(pattern.substring(last)));
            this.regex = Pattern.compile(re.toString());
        }

        Map<String, String> match(String path) {
            Matcher m = regex.matcher(path);
            if (!m.matches()) {
                return null;
            }
            Map<String, String> vars = new LinkedHashMap<>();
            for (int i = 0; i < variables.size(); i++) {
                vars.put(variables.get(i), URLDecoder.decode(m.group(i + 1).replace("+", "%2B"), StandardCharsets.UTF_8));
            }
            return vars;
        }

        /** Spring's PathPattern specificity: fewer URI variables first, then the longer literal. */
        static final Comparator<RequestMapping> SPECIFICITY = Comparator
                .comparingInt((RequestMapping r) -> r.variables.size())
                .thenComparing(r -> -r.pattern.length());
    }

    static final class DispatcherHandler implements HttpHandler {
        private final List<RequestMapping> mappings = new ArrayList<>();
        private final ObjectMapper mapper;
        private final ResponseWriter writer;
        private final AppProperties props;

        DispatcherHandler(ObjectMapper mapper, ResponseWriter writer, AppProperties props) {
            this.mapper = mapper;
            this.writer = writer;
            this.props = props;
        }

        DispatcherHandler register(String method, String pattern, HandlerMethod handler) {
            mappings.add(new RequestMapping(method, pattern, handler));
            mappings.sort(RequestMapping.SPECIFICITY);
            return this;
        }

        @Override
        public void handle(HttpExchange exchange) throws IOException {
            String path = exchange.getRequestURI().getRawPath();
            ResponseEntity response;
            try {
                response = dispatch(exchange, path);
            } catch (HttpRequestMethodNotSupportedException e) {
                response = new ResponseEntity(405, errorResponse(405, path).body(),
                        Map.of("Allow", String.join(", ", e.allowed)));
            } catch (PayloadTooLargeException e) {
                response = new ResponseEntity(413, errorResponse(413, path).body(), Map.of("Connection", "close"));
            } catch (ResponseStatusException e) {
                response = errorResponse(e.status, path);
            } catch (Exception e) {
                System.err.println("ERROR " + exchange.getRequestMethod() + " " + path + ": " + e);
                response = errorResponse(500, path);
            }
            try {
                writer.write(exchange, response);
            } catch (IOException clientWentAway) {
                // nothing left to tell the client
            } finally {
                exchange.close();
            }
        }

        private ResponseEntity dispatch(HttpExchange exchange, String path) throws Exception {
            String method = exchange.getRequestMethod().toUpperCase(Locale.ROOT);
            String lookupMethod = method.equals("HEAD") ? "GET" : method;
            Set<String> allowed = new LinkedHashSet<>();
            for (RequestMapping mapping : mappings) {
                Map<String, String> vars = mapping.match(path);
                if (vars == null) {
                    continue;
                }
                if (mapping.method.equals(lookupMethod)) {
                    return mapping.handler.handle(new WebRequest(exchange, vars, mapper, props.maxRequestBytes));
                }
                allowed.add(mapping.method);
            }
            if (allowed.isEmpty()) {
                throw new ResponseStatusException(404, "No static resource " + path);
            }
            if (allowed.contains("GET")) {
                allowed.add("HEAD");
            }
            allowed.add("OPTIONS");
            if (method.equals("OPTIONS")) {
                return new ResponseEntity(200, Map.of(), Map.of("Allow", String.join(", ", allowed)));
            }
            throw new HttpRequestMethodNotSupportedException(method, allowed);
        }
    }

    // =====================================================================================================
    // Normalisation helpers used for sync matching
    // =====================================================================================================

    static String normalizeEmail(String email) {
        if (isBlank(email)) {
            return null;
        }
        return email.trim().toLowerCase(Locale.ROOT);
    }

    static String normalizeLinkedinUrl(String url) {
        if (isBlank(url)) {
            return null;
        }
        String u = url.trim().toLowerCase(Locale.ROOT).replaceAll("/+$", "");
        return u.isEmpty() ? null : u;
    }

    /** lower-case, strip protocol and www., drop everything from the first '/', trim. */
    static String normalizeDomain(String domain) {
        if (isBlank(domain)) {
            return null;
        }
        String d = domain.trim().toLowerCase(Locale.ROOT)
                .replaceFirst("^https?://", "")
                .replaceFirst("^www\\.", "");
        if (Bugs.on(Bug.DOMAIN_KEEPS_PATH)) {
            d = d.replaceAll("/+$", "");
        } else {
            int slash = d.indexOf('/');
            if (slash >= 0) {
                d = d.substring(0, slash);
            }
        }
        d = d.trim();
        return d.isEmpty() ? null : d;
    }

    /** A secondary index (normalised key -> record ids, oldest first), guarded by its repository's lock. */
    static final class LookupIndex {
        private final Map<String, Set<String>> idsByKey = new HashMap<>();

        void add(String key, String id) {
            if (indexable(key)) {
                idsByKey.computeIfAbsent(key, k -> new LinkedHashSet<>()).add(id);
            }
        }

        void remove(String key, String id) {
            if (indexable(key)) {
                Set<String> ids = idsByKey.get(key);
                if (ids != null) {
                    ids.remove(id);
                    if (ids.isEmpty()) {
                        idsByKey.remove(key);
                    }
                }
            }
        }

        Optional<String> find(String key) {
            if (!indexable(key)) {
                return Optional.empty();
            }
            Set<String> ids = idsByKey.get(key);
            return ids == null ? Optional.empty() : ids.stream().findFirst();
        }

        private static boolean indexable(String key) {
            return key != null || Bugs.on(Bug.NULL_KEYS_MATCH);
        }
    }

    static Map<String, Object> nonNullProperties(Object... keyValues) {
        Map<String, Object> props = new LinkedHashMap<>();
        for (int i = 0; i < keyValues.length; i += 2) {
            if (keyValues[i + 1] != null) {
                props.put((String) keyValues[i], keyValues[i + 1]);
            }
        }
        return props;
    }

    // =====================================================================================================
    // Contacts
    // =====================================================================================================

    /** One contact as Enginy sends it (create, sync and update share the shape). Unknown lead fields are kept. */
    public static class ContactPayload {
        private String externalId;
        private String crmId;
        private String email;
        private String firstName;
        private String lastName;
        private String phone;
        private String company;
        private String title;
        private String linkedinUrl;
        private String ownerId;
        private final Map<String, Object> customFields = new LinkedHashMap<>();

        public String getExternalId() { return externalId; }
        public void setExternalId(String externalId) { this.externalId = externalId; }
        public String getCrmId() { return crmId; }
        public void setCrmId(String crmId) { this.crmId = crmId; }
        public String getEmail() { return email; }
        public void setEmail(String email) { this.email = email; }
        public String getFirstName() { return firstName; }
        public void setFirstName(String firstName) { this.firstName = firstName; }
        public String getLastName() { return lastName; }
        public void setLastName(String lastName) { this.lastName = lastName; }
        public String getPhone() { return phone; }
        public void setPhone(String phone) { this.phone = phone; }
        public String getCompany() { return company; }
        public void setCompany(String company) { this.company = company; }
        public String getTitle() { return title; }
        public void setTitle(String title) { this.title = title; }
        public String getLinkedinUrl() { return linkedinUrl; }
        public void setLinkedinUrl(String linkedinUrl) { this.linkedinUrl = linkedinUrl; }
        public String getOwnerId() { return ownerId; }
        public void setOwnerId(String ownerId) { this.ownerId = ownerId; }
        Map<String, Object> customFields() { return customFields; }

        @JsonAnySetter
        public void setCustomField(String name, Object value) {
            customFields.put(name, value);
        }
    }

    abstract static class ContactBatch implements Validated {
        private List<ContactPayload> contacts;

        public List<ContactPayload> getContacts() { return contacts; }
        public void setContacts(List<ContactPayload> contacts) { this.contacts = contacts; }

        abstract String requiredKey(ContactPayload c);

        abstract String requiredKeyName();

        @Override
        public List<String> violations() {
            List<String> v = new ArrayList<>();
            if (contacts == null) {
                v.add("contacts: must not be null");
                return v;
            }
            for (int i = 0; i < contacts.size(); i++) {
                ContactPayload c = contacts.get(i);
                if (c == null) {
                    v.add("contacts[" + i + "]: must not be null");
                } else if (isBlank(requiredKey(c))) {
                    v.add("contacts[" + i + "]." + requiredKeyName() + ": must not be blank");
                }
            }
            return v;
        }
    }

    public static class CreateContactsRequest extends ContactBatch {
        String requiredKey(ContactPayload c) { return c.getExternalId(); }
        String requiredKeyName() { return "externalId"; }
    }

    public static class UpdateContactsRequest extends ContactBatch {
        String requiredKey(ContactPayload c) { return c.getCrmId(); }
        String requiredKeyName() { return "crmId"; }
    }

    public static class Contact {
        String id;
        String externalId;
        String email;
        String firstName;
        String lastName;
        String phone;
        String company;
        String title;
        String linkedinUrl;
        String ownerId;
        final Map<String, Object> customFields = new LinkedHashMap<>();
        Instant createdAt;
        Instant updatedAt;

        void apply(ContactPayload p) {
            if (p.getExternalId() != null) externalId = p.getExternalId();
            if (p.getEmail() != null) email = p.getEmail();
            if (p.getFirstName() != null) firstName = p.getFirstName();
            if (p.getLastName() != null) lastName = p.getLastName();
            if (p.getPhone() != null) phone = p.getPhone();
            if (p.getCompany() != null) company = p.getCompany();
            if (p.getTitle() != null) title = p.getTitle();
            if (p.getLinkedinUrl() != null) linkedinUrl = p.getLinkedinUrl();
            if (p.getOwnerId() != null) ownerId = p.getOwnerId();
            customFields.putAll(p.customFields());
        }

        Map<String, Object> syncProperties() {
            return nonNullProperties("email", email, "phone", phone, "ownerId", ownerId);
        }
    }

    record ExternalIdMapping(String externalId, String crmId) {
    }

    record SyncResult(String externalId, String crmId, Map<String, Object> properties) {
    }

    record UpdateResult(String crmId, boolean success, Map<String, Object> properties) {
    }

    record ResultsResponse<T>(List<T> results) {
    }

    static final class ContactRepository {
        private final Map<String, Contact> contacts = new LinkedHashMap<>();
        private final LookupIndex byEmail = new LookupIndex();
        private final LookupIndex byLinkedin = new LookupIndex();

        synchronized Contact save(ContactPayload payload) {
            Contact c = new Contact();
            c.id = UUID.randomUUID().toString();
            c.apply(payload);
            c.createdAt = c.updatedAt = Instant.now();
            contacts.put(c.id, c);
            index(c);
            return c;
        }

        synchronized Optional<Contact> findById(String id) {
            return Optional.ofNullable(contacts.get(id));
        }

        synchronized Contact update(Contact c, ContactPayload payload) {
            unindex(c);
            c.apply(payload);
            c.updatedAt = Instant.now();
            index(c);
            return c;
        }

        /** Email (lower-cased) first, then LinkedIn URL without trailing slashes. */
        synchronized Optional<Contact> findMatch(ContactPayload probe) {
            Optional<String> id = byEmail.find(normalizeEmail(probe.getEmail()));
            if (id.isEmpty()) {
                id = byLinkedin.find(normalizeLinkedinUrl(probe.getLinkedinUrl()));
            }
            return id.map(contacts::get);
        }

        synchronized boolean exists(String id) {
            return contacts.containsKey(id);
        }

        private void index(Contact c) {
            byEmail.add(normalizeEmail(c.email), c.id);
            byLinkedin.add(normalizeLinkedinUrl(c.linkedinUrl), c.id);
        }

        private void unindex(Contact c) {
            byEmail.remove(normalizeEmail(c.email), c.id);
            byLinkedin.remove(normalizeLinkedinUrl(c.linkedinUrl), c.id);
        }
    }

    static final class ContactController {
        private final ContactRepository repository;

        ContactController(ContactRepository repository) {
            this.repository = repository;
        }

        /** POST /contacts */
        ResponseEntity create(WebRequest request) throws IOException {
            CreateContactsRequest body = request.body(CreateContactsRequest.class);
            List<ExternalIdMapping> results = new ArrayList<>();
            for (ContactPayload payload : body.getContacts()) {
                Contact saved = repository.save(payload);
                results.add(new ExternalIdMapping(payload.getExternalId(), saved.id));
            }
            return ResponseEntity.ok(new ResultsResponse<>(results));
        }

        /** POST /contacts/sync: only matched contacts are answered. */
        ResponseEntity sync(WebRequest request) throws IOException {
            CreateContactsRequest body = request.body(CreateContactsRequest.class);
            List<SyncResult> results = new ArrayList<>();
            for (ContactPayload probe : body.getContacts()) {
                repository.findMatch(probe).ifPresent(match ->
                        results.add(new SyncResult(probe.getExternalId(), match.id, match.syncProperties())));
            }
            return ResponseEntity.ok(new ResultsResponse<>(results));
        }

        /** PUT /contacts: unknown crmIds are reported per item. */
        ResponseEntity update(WebRequest request) throws IOException {
            UpdateContactsRequest body = request.body(UpdateContactsRequest.class);
            List<UpdateResult> results = new ArrayList<>();
            for (ContactPayload payload : body.getContacts()) {
                Optional<Contact> existing = repository.findById(payload.getCrmId());
                if (existing.isEmpty()) {
                    if (Bugs.on(Bug.UPDATE_UNKNOWN_404)) {
                        throw new ResponseStatusException(404, "Contact not found");
                    }
                    results.add(new UpdateResult(payload.getCrmId(), false, null));
                    continue;
                }
                Contact updated = repository.update(existing.get(), payload);
                results.add(new UpdateResult(updated.id, true, updated.syncProperties()));
            }
            return ResponseEntity.ok(new ResultsResponse<>(results));
        }
    }

    // =====================================================================================================
    // Companies
    // =====================================================================================================

    public static class CompanyPayload {
        private String externalId;
        private String crmId;
        private String name;
        private String domain;
        private String industry;
        private Number numberOfEmployees;
        private String linkedinUrl;
        private String ownerId;
        private final Map<String, Object> customFields = new LinkedHashMap<>();

        public String getExternalId() { return externalId; }
        public void setExternalId(String externalId) { this.externalId = externalId; }
        public String getCrmId() { return crmId; }
        public void setCrmId(String crmId) { this.crmId = crmId; }
        public String getName() { return name; }
        public void setName(String name) { this.name = name; }
        public String getDomain() { return domain; }
        public void setDomain(String domain) { this.domain = domain; }
        public String getIndustry() { return industry; }
        public void setIndustry(String industry) { this.industry = industry; }
        public Number getNumberOfEmployees() { return numberOfEmployees; }
        public void setNumberOfEmployees(Number numberOfEmployees) { this.numberOfEmployees = numberOfEmployees; }
        public String getLinkedinUrl() { return linkedinUrl; }
        public void setLinkedinUrl(String linkedinUrl) { this.linkedinUrl = linkedinUrl; }
        public String getOwnerId() { return ownerId; }
        public void setOwnerId(String ownerId) { this.ownerId = ownerId; }
        Map<String, Object> customFields() { return customFields; }

        @JsonAnySetter
        public void setCustomField(String name, Object value) {
            customFields.put(name, value);
        }
    }

    abstract static class CompanyBatch implements Validated {
        private List<CompanyPayload> companies;

        public List<CompanyPayload> getCompanies() { return companies; }
        public void setCompanies(List<CompanyPayload> companies) { this.companies = companies; }

        abstract String requiredKey(CompanyPayload c);

        abstract String requiredKeyName();

        @Override
        public List<String> violations() {
            List<String> v = new ArrayList<>();
            if (companies == null) {
                v.add("companies: must not be null");
                return v;
            }
            for (int i = 0; i < companies.size(); i++) {
                CompanyPayload c = companies.get(i);
                if (c == null) {
                    v.add("companies[" + i + "]: must not be null");
                } else if (isBlank(requiredKey(c))) {
                    v.add("companies[" + i + "]." + requiredKeyName() + ": must not be blank");
                }
            }
            return v;
        }
    }

    public static class CreateCompaniesRequest extends CompanyBatch {
        String requiredKey(CompanyPayload c) { return c.getExternalId(); }
        String requiredKeyName() { return "externalId"; }
    }

    public static class UpdateCompaniesRequest extends CompanyBatch {
        String requiredKey(CompanyPayload c) { return c.getCrmId(); }
        String requiredKeyName() { return "crmId"; }
    }

    public static class Company {
        String id;
        String externalId;
        String name;
        String domain;
        String industry;
        Number numberOfEmployees;
        String linkedinUrl;
        String ownerId;
        final Map<String, Object> customFields = new LinkedHashMap<>();
        Instant createdAt;
        Instant updatedAt;

        void apply(CompanyPayload p) {
            if (p.getExternalId() != null) externalId = p.getExternalId();
            if (p.getName() != null) name = p.getName();
            if (p.getDomain() != null) domain = p.getDomain();
            if (p.getIndustry() != null) industry = p.getIndustry();
            if (p.getNumberOfEmployees() != null) numberOfEmployees = p.getNumberOfEmployees();
            if (p.getLinkedinUrl() != null) linkedinUrl = p.getLinkedinUrl();
            if (p.getOwnerId() != null) ownerId = p.getOwnerId();
            customFields.putAll(p.customFields());
        }

        Map<String, Object> syncProperties() {
            return nonNullProperties("name", name, "domain", domain, "ownerId", ownerId);
        }
    }

    static final class CompanyRepository {
        private final Map<String, Company> companies = new LinkedHashMap<>();
        private final LookupIndex byDomain = new LookupIndex();
        private final LookupIndex byLinkedin = new LookupIndex();

        synchronized Company save(CompanyPayload payload) {
            Company c = new Company();
            c.id = UUID.randomUUID().toString();
            c.apply(payload);
            c.createdAt = c.updatedAt = Instant.now();
            companies.put(c.id, c);
            index(c);
            return c;
        }

        synchronized Optional<Company> findById(String id) {
            return Optional.ofNullable(companies.get(id));
        }

        synchronized Company update(Company c, CompanyPayload payload) {
            unindex(c);
            c.apply(payload);
            c.updatedAt = Instant.now();
            index(c);
            return c;
        }

        /** Domain first (the most reliable key), then the LinkedIn company URL. */
        synchronized Optional<Company> findMatch(CompanyPayload probe) {
            Optional<String> id = byDomain.find(normalizeDomain(probe.getDomain()));
            if (id.isEmpty()) {
                id = byLinkedin.find(normalizeLinkedinUrl(probe.getLinkedinUrl()));
            }
            return id.map(companies::get);
        }

        synchronized boolean exists(String id) {
            return companies.containsKey(id);
        }

        private void index(Company c) {
            byDomain.add(normalizeDomain(c.domain), c.id);
            byLinkedin.add(normalizeLinkedinUrl(c.linkedinUrl), c.id);
        }

        private void unindex(Company c) {
            byDomain.remove(normalizeDomain(c.domain), c.id);
            byLinkedin.remove(normalizeLinkedinUrl(c.linkedinUrl), c.id);
        }
    }

    static final class CompanyController {
        private final CompanyRepository repository;

        CompanyController(CompanyRepository repository) {
            this.repository = repository;
        }

        /** POST /companies */
        ResponseEntity create(WebRequest request) throws IOException {
            CreateCompaniesRequest body = request.body(CreateCompaniesRequest.class);
            List<ExternalIdMapping> results = new ArrayList<>();
            for (CompanyPayload payload : body.getCompanies()) {
                Company saved = repository.save(payload);
                results.add(new ExternalIdMapping(payload.getExternalId(), saved.id));
            }
            return ResponseEntity.ok(new ResultsResponse<>(results));
        }

        /** POST /companies/sync */
        ResponseEntity sync(WebRequest request) throws IOException {
            CreateCompaniesRequest body = request.body(CreateCompaniesRequest.class);
            List<SyncResult> results = new ArrayList<>();
            for (CompanyPayload probe : body.getCompanies()) {
                repository.findMatch(probe).ifPresent(match ->
                        results.add(new SyncResult(probe.getExternalId(), match.id, match.syncProperties())));
            }
            return ResponseEntity.ok(new ResultsResponse<>(results));
        }

        /** PUT /companies */
        ResponseEntity update(WebRequest request) throws IOException {
            UpdateCompaniesRequest body = request.body(UpdateCompaniesRequest.class);
            List<UpdateResult> results = new ArrayList<>();
            for (CompanyPayload payload : body.getCompanies()) {
                Optional<Company> existing = repository.findById(payload.getCrmId());
                if (existing.isEmpty()) {
                    if (Bugs.on(Bug.UPDATE_UNKNOWN_404)) {
                        throw new ResponseStatusException(404, "Company not found");
                    }
                    results.add(new UpdateResult(payload.getCrmId(), false, null));
                    continue;
                }
                Company updated = repository.update(existing.get(), payload);
                results.add(new UpdateResult(updated.id, true, updated.syncProperties()));
            }
            return ResponseEntity.ok(new ResultsResponse<>(results));
        }
    }

    // =====================================================================================================
    // Associations
    // =====================================================================================================

    public static class AssociationPayload {
        private String contactCRMId;
        private String companyCRMId;

        public String getContactCRMId() { return contactCRMId; }
        public void setContactCRMId(String contactCRMId) { this.contactCRMId = contactCRMId; }
        public String getCompanyCRMId() { return companyCRMId; }
        public void setCompanyCRMId(String companyCRMId) { this.companyCRMId = companyCRMId; }
    }

    public static class AssociationsRequest implements Validated {
        private List<AssociationPayload> associations;

        public List<AssociationPayload> getAssociations() { return associations; }
        public void setAssociations(List<AssociationPayload> associations) { this.associations = associations; }

        @Override
        public List<String> violations() {
            List<String> v = new ArrayList<>();
            if (associations == null) {
                v.add("associations: must not be null");
                return v;
            }
            for (int i = 0; i < associations.size(); i++) {
                AssociationPayload a = associations.get(i);
                if (a == null) {
                    v.add("associations[" + i + "]: must not be null");
                    continue;
                }
                if (isBlank(a.getContactCRMId())) v.add("associations[" + i + "].contactCRMId: must not be blank");
                if (isBlank(a.getCompanyCRMId())) v.add("associations[" + i + "].companyCRMId: must not be blank");
            }
            return v;
        }
    }

    record AssociationError(String contactCRMId, String companyCRMId, String error) {
    }

    record AssociationsResponse(boolean success, int created, List<AssociationError> errors) {
    }

    record ContactCompanyPair(String contactId, String companyId) {
    }

    static final class AssociationRepository {
        private final Set<ContactCompanyPair> pairs = ConcurrentHashMap.newKeySet();

        /** Upsert: false when the pair already existed. */
        boolean saveIfAbsent(ContactCompanyPair pair) {
            return pairs.add(pair);
        }
    }

    static final class AssociationController {
        private final AssociationRepository associations;
        private final ContactRepository contacts;
        private final CompanyRepository companies;

        AssociationController(AssociationRepository associations, ContactRepository contacts,
                              CompanyRepository companies) {
            this.associations = associations;
            this.contacts = contacts;
            this.companies = companies;
        }

        /** POST /associations: partial success is still 200 with success true. */
        ResponseEntity create(WebRequest request) throws IOException {
            AssociationsRequest body = request.body(AssociationsRequest.class);
            int created = 0;
            List<AssociationError> errors = new ArrayList<>();
            for (AssociationPayload a : body.getAssociations()) {
                if (!contacts.exists(a.getContactCRMId())) {
                    errors.add(new AssociationError(a.getContactCRMId(), a.getCompanyCRMId(), "Contact not found"));
                } else if (!companies.exists(a.getCompanyCRMId())) {
                    errors.add(new AssociationError(a.getContactCRMId(), a.getCompanyCRMId(), "Company not found"));
                } else if (associations.saveIfAbsent(new ContactCompanyPair(a.getContactCRMId(), a.getCompanyCRMId()))) {
                    created++;
                }
            }
            return ResponseEntity.ok(new AssociationsResponse(true, created, errors));
        }
    }

    // =====================================================================================================
    // Activities
    // =====================================================================================================

    public enum ActivityType { EMAIL, LINKEDIN, LINKEDIN_INMAIL, LINKEDIN_CONNECTION }

    public enum Direction { INBOUND, OUTBOUND }

    public static class CreateActivityRequest implements Validated {
        private ActivityType type;
        private String subject;
        private String body;
        private Direction direction;
        private String ownerId;
        private Instant occurredAt;
        private String contactId;
        private String companyId;
        private Map<String, Object> metadata;

        public ActivityType getType() { return type; }
        public void setType(ActivityType type) { this.type = type; }
        public String getSubject() { return subject; }
        public void setSubject(String subject) { this.subject = subject; }
        public String getBody() { return body; }
        public void setBody(String body) { this.body = body; }
        public Direction getDirection() { return direction; }
        public void setDirection(Direction direction) { this.direction = direction; }
        public String getOwnerId() { return ownerId; }
        public void setOwnerId(String ownerId) { this.ownerId = ownerId; }
        public Instant getOccurredAt() { return occurredAt; }
        public void setOccurredAt(Instant occurredAt) { this.occurredAt = occurredAt; }
        public String getContactId() { return contactId; }
        public void setContactId(String contactId) { this.contactId = contactId; }
        public String getCompanyId() { return companyId; }
        public void setCompanyId(String companyId) { this.companyId = companyId; }
        public Map<String, Object> getMetadata() { return metadata; }
        public void setMetadata(Map<String, Object> metadata) { this.metadata = metadata; }

        @Override
        public List<String> violations() {
            return type == null ? List.of("type: must not be null") : List.of();
        }
    }

    /** The stored activity, returned as is. */
    record Activity(String id, ActivityType type, String subject, String body, Direction direction, String ownerId,
                    Instant occurredAt, String contactId, String companyId, Map<String, Object> metadata) {
    }

    static final class ActivityRepository {
        private final Map<String, Activity> activities = new ConcurrentHashMap<>();

        Activity save(CreateActivityRequest r) {
            if (Bugs.on(Bug.ACTIVITY_BODY_VARCHAR_255) && r.getBody() != null && r.getBody().length() > 255) {
                throw new DataIntegrityViolationException(
                        "could not execute statement; Value too long for column \"BODY CHARACTER VARYING(255)\"");
            }
            Activity a = new Activity(UUID.randomUUID().toString(), r.getType(), r.getSubject(), r.getBody(),
                    r.getDirection(), r.getOwnerId(), r.getOccurredAt(), r.getContactId(), r.getCompanyId(),
                    r.getMetadata());
            activities.put(a.id(), a);
            return a;
        }
    }

    static final class ActivityController {
        private final ActivityRepository repository;

        ActivityController(ActivityRepository repository) {
            this.repository = repository;
        }

        /** POST /activities -> 201 Created with the stored activity. */
        ResponseEntity create(WebRequest request) throws IOException {
            CreateActivityRequest body = request.body(CreateActivityRequest.class);
            return ResponseEntity.created(repository.save(body));
        }
    }

    // =====================================================================================================
    // Tasks
    // =====================================================================================================

    public static class CreateTaskRequest implements Validated {
        private String subject;
        private String description;
        private String type;
        private String ownerId;
        private Instant dueDate;
        private String contactId;
        private String companyId;

        public String getSubject() { return subject; }
        public void setSubject(String subject) { this.subject = subject; }
        public String getDescription() { return description; }
        public void setDescription(String description) { this.description = description; }
        public String getType() { return type; }
        public void setType(String type) { this.type = type; }
        public String getOwnerId() { return ownerId; }
        public void setOwnerId(String ownerId) { this.ownerId = ownerId; }
        public Instant getDueDate() { return dueDate; }
        public void setDueDate(Instant dueDate) { this.dueDate = dueDate; }
        public String getContactId() { return contactId; }
        public void setContactId(String contactId) { this.contactId = contactId; }
        public String getCompanyId() { return companyId; }
        public void setCompanyId(String companyId) { this.companyId = companyId; }

        @Override
        public List<String> violations() {
            return isBlank(subject) ? List.of("subject: must not be blank") : List.of();
        }
    }

    /** PATCH /tasks/{taskId}: every field optional; completed true completes, false re-opens. */
    public static class UpdateTaskRequest extends CreateTaskRequest {
        private Boolean completed;

        public Boolean getCompleted() { return completed; }
        public void setCompleted(Boolean completed) { this.completed = completed; }

        @Override
        public List<String> violations() {
            return getSubject() != null && getSubject().isBlank() ? List.of("subject: must not be blank") : List.of();
        }
    }

    public static class TaskIdsRequest implements Validated {
        private List<String> ids;

        public List<String> getIds() { return ids; }
        public void setIds(List<String> ids) { this.ids = ids; }

        @Override
        public List<String> violations() {
            if (ids == null) {
                return List.of("ids: must not be null");
            }
            return ids.contains(null) ? List.of("ids[]: must not be null") : List.of();
        }
    }

    public static class CompleteTasksRequest extends TaskIdsRequest {
        private Boolean completed;

        public Boolean getCompleted() { return completed; }
        public void setCompleted(Boolean completed) { this.completed = completed; }

        @Override
        public List<String> violations() {
            List<String> v = new ArrayList<>(super.violations());
            if (completed == null) {
                v.add("completed: must not be null");
            }
            return v;
        }
    }

    public static class Task {
        private String id;
        private String subject;
        private String description;
        private String type;
        private String ownerId;
        private Instant dueDate;
        private String contactId;
        private String companyId;
        private boolean completed;
        private Instant completedAt;

        public String getId() { return id; }
        public String getSubject() { return subject; }
        public String getDescription() { return description; }
        public String getType() { return type; }
        public String getOwnerId() { return ownerId; }
        public Instant getDueDate() { return dueDate; }
        public String getContactId() { return contactId; }
        public String getCompanyId() { return companyId; }
        public boolean isCompleted() { return completed; }
        public Instant getCompletedAt() { return completedAt; }

        synchronized void apply(CreateTaskRequest r) {
            if (r.getSubject() != null) subject = r.getSubject();
            if (r.getDescription() != null) description = r.getDescription();
            if (r.getType() != null) type = r.getType();
            if (r.getOwnerId() != null) ownerId = r.getOwnerId();
            if (r.getDueDate() != null) dueDate = r.getDueDate();
            if (r.getContactId() != null) contactId = r.getContactId();
            if (r.getCompanyId() != null) companyId = r.getCompanyId();
        }

        synchronized void setCompleted(boolean done) {
            if (done && !completed) {
                completedAt = Instant.now();
            } else if (!done) {
                completedAt = null;
            }
            completed = done;
        }
    }

    static final class TaskRepository {
        private final Map<String, Task> tasks = new ConcurrentHashMap<>();
        private final AtomicLong sequence = new AtomicLong();

        Task save(CreateTaskRequest r) {
            Task t = new Task();
            t.id = nextId();
            t.apply(r);
            tasks.put(t.id, t);
            return t;
        }

        Optional<Task> findById(String id) {
            return Optional.ofNullable(tasks.get(id));
        }

        List<Task> findAllById(List<String> ids) {
            return ids.stream().distinct().map(tasks::get).filter(Objects::nonNull).collect(Collectors.toList());
        }

        private String nextId() {
            if (Bugs.on(Bug.TASK_IDS_AS_NUMBERS)) {
                return String.valueOf(sequence.incrementAndGet());
            }
            return UUID.randomUUID().toString();
        }
    }

    static final class TaskController {
        private final TaskRepository repository;

        TaskController(TaskRepository repository) {
            this.repository = repository;
        }

        /** POST /tasks -> 201 Created with the task. */
        ResponseEntity create(WebRequest request) throws IOException {
            CreateTaskRequest body = request.body(CreateTaskRequest.class);
            return ResponseEntity.created(repository.save(body));
        }

        /** GET /tasks/{taskId} */
        ResponseEntity get(WebRequest request) {
            return ResponseEntity.ok(findOr404(request.pathVariable("taskId")));
        }

        /** PATCH /tasks/{taskId} */
        ResponseEntity update(WebRequest request) throws IOException {
            UpdateTaskRequest body = request.body(UpdateTaskRequest.class);
            Task task = findOr404(request.pathVariable("taskId"));
            task.apply(body);
            if (body.getCompleted() != null) {
                task.setCompleted(body.getCompleted());
            }
            return ResponseEntity.ok(task);
        }

        /** POST /tasks/batch: a bare array; unknown ids are left out. */
        ResponseEntity batchGet(WebRequest request) throws IOException {
            TaskIdsRequest body = request.body(TaskIdsRequest.class);
            return ResponseEntity.ok(repository.findAllById(body.getIds()));
        }

        /** PATCH /tasks/batch: the updated tasks; unknown ids are left out. */
        ResponseEntity batchComplete(WebRequest request) throws IOException {
            CompleteTasksRequest body = request.body(CompleteTasksRequest.class);
            List<Task> tasks = repository.findAllById(body.getIds());
            tasks.forEach(t -> t.setCompleted(body.getCompleted()));
            return ResponseEntity.ok(tasks);
        }

        private Task findOr404(String id) {
            return repository.findById(id).orElseThrow(() -> new ResponseStatusException(404, "Task not found"));
        }
    }

    // =====================================================================================================
    // Health
    // =====================================================================================================

    static ResponseEntity health(WebRequest request) {
        return ResponseEntity.ok(Map.of("status", "UP"));
    }

    // =====================================================================================================
    // Application bootstrap
    // =====================================================================================================

    static void listBugs() throws IOException {
        List<Map<String, String>> entries = new ArrayList<>();
        for (Bug b : Bug.values()) {
            Map<String, String> e = new LinkedHashMap<>();
            e.put("id", b.id);
            e.put("summary", b.summary);
            e.put("breaks", b.breaks);
            e.put("rule", b.rule);
            entries.add(e);
        }
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        out.println(new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsString(entries));
    }

    static void usage(String problem) {
        System.err.println(problem + " (usage: SpringStyleCrm --port N --key KEY [--key-header NAME] [--bug ID ...]"
                + " | --list-bugs)");
        System.exit(2);
    }

    static AppProperties parseArgs(String[] args) throws IOException {
        AppProperties props = new AppProperties();
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            String value = null;
            int eq = arg.indexOf('=');
            if (arg.startsWith("--") && eq > 0) {
                value = arg.substring(eq + 1);
                arg = arg.substring(0, eq);
            }
            if (arg.equals("--list-bugs")) {
                listBugs();
                System.exit(0);
            }
            if (!List.of("--port", "--key", "--key-header", "--bug").contains(arg)) {
                usage("unknown argument: " + arg);
            }
            if (value == null) {
                if (i + 1 >= args.length) {
                    usage("missing value for " + arg);
                }
                value = args[++i];
            }
            switch (arg) {
                case "--port" -> {
                    try {
                        props.port = Integer.parseInt(value);
                    } catch (NumberFormatException e) {
                        usage("invalid port: " + value);
                    }
                }
                case "--key" -> props.apiKey = value;
                case "--key-header" -> props.apiKeyHeader = value;
                default -> {
                    String bugId = value;
                    Bug bug = Bug.byId(bugId).orElse(null);
                    if (bug == null) {
                        usage("unknown bug id: " + bugId);
                    }
                    Bugs.ACTIVE.add(bug);
                }
            }
        }
        if (props.port < 0 || props.port > 65535) {
            usage("--port is required");
        }
        if (props.apiKey == null || props.apiKey.isEmpty()) {
            usage("--key is required");
        }
        if (props.apiKeyHeader.isBlank()) {
            usage("--key-header must not be empty");
        }
        return props;
    }

    public static void main(String[] args) throws Exception {
        AppProperties props = parseArgs(args);

        ObjectMapper mapper = objectMapper();
        ResponseWriter writer = new ResponseWriter(mapper);

        ContactRepository contactRepository = new ContactRepository();
        CompanyRepository companyRepository = new CompanyRepository();
        ContactController contacts = new ContactController(contactRepository);
        CompanyController companies = new CompanyController(companyRepository);
        AssociationController associations = new AssociationController(
                new AssociationRepository(), contactRepository, companyRepository);
        ActivityController activities = new ActivityController(new ActivityRepository());
        TaskController tasks = new TaskController(new TaskRepository());

        DispatcherHandler dispatcher = new DispatcherHandler(mapper, writer, props)
                .register("GET", "/health", SpringStyleCrm::health)
                .register("POST", "/contacts", contacts::create)
                .register("POST", "/contacts/sync", contacts::sync)
                .register("PUT", "/contacts", contacts::update)
                .register("POST", "/companies", companies::create)
                .register("POST", "/companies/sync", companies::sync)
                .register("PUT", "/companies", companies::update)
                .register("POST", "/associations", associations::create)
                .register("POST", "/activities", activities::create)
                .register("POST", "/tasks", tasks::create)
                .register("GET", "/tasks/{taskId}", tasks::get)
                .register("PATCH", "/tasks/{taskId}", tasks::update)
                .register("POST", "/tasks/batch", tasks::batchGet)
                .register("PATCH", "/tasks/batch", tasks::batchComplete);

        AtomicInteger threadNumber = new AtomicInteger();
        ThreadPoolExecutor executor = new ThreadPoolExecutor(200, 200, 60, TimeUnit.SECONDS,
                new LinkedBlockingQueue<>(), r -> {
                    Thread t = new Thread(r, "http-exec-" + threadNumber.incrementAndGet());
                    t.setDaemon(true);
                    return t;
                });
        executor.allowCoreThreadTimeOut(true);

        HttpServer server = HttpServer.create(
                new InetSocketAddress(InetAddress.getByName("127.0.0.1"), props.port), 100);
        HttpContext context = server.createContext("/", dispatcher);
        context.getFilters().add(new ApiKeyFilter(props, writer));
        server.setExecutor(executor);
        server.start();

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.stop(0);
            executor.shutdownNow();
        }, "shutdown"));

        System.out.println("listening on http://127.0.0.1:" + server.getAddress().getPort());
        System.out.flush();
    }
}
