// Reads canonical events as a downstream Java consumer would: Avro's reference implementation,
// BinaryMessageDecoder over a SchemaStore of the schemas in schemas/. Arguments: the schema
// folder, then files named <event type>.<n>.bin, each one message value. Prints a line per schema
// ("schema <type> <fingerprint>") and per message ("record <file> <record as JSON>"); exits 1 on
// the first message it cannot read.
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.Map;

import org.apache.avro.Conversions;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.data.TimeConversions;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.SchemaStore;

public class SingleObjectDecode {
    public static void main(String[] args) throws Exception {
        GenericData model = new GenericData();
        model.addLogicalTypeConversion(new Conversions.DecimalConversion());
        model.addLogicalTypeConversion(new TimeConversions.DateConversion());
        model.addLogicalTypeConversion(new TimeConversions.TimestampMicrosConversion());
        SchemaStore.Cache store = new SchemaStore.Cache();
        Map<String, Schema> byType = new HashMap<>();
        try (DirectoryStream<Path> schemas = Files.newDirectoryStream(Paths.get(args[0]), "*.avsc")) {
            for (Path path : schemas) {
                Schema schema = new Schema.Parser().parse(path.toFile());
                String type = path.getFileName().toString().replace(".avsc", "");
                store.addSchema(schema);
                byType.put(type, schema);
                System.out.println("schema\t" + type + "\t" + SchemaNormalization.parsingFingerprint64(schema));
            }
        }
        for (int i = 1; i < args.length; i++) {
            Path file = Paths.get(args[i]);
            String type = file.getFileName().toString().split("\\.")[0];
            BinaryMessageDecoder<GenericRecord> decoder = new BinaryMessageDecoder<>(model, byType.get(type), store);
            try {
                GenericRecord record = decoder.decode(Files.readAllBytes(file));
                System.out.println("record\t" + file.getFileName() + "\t" + record);
            } catch (Exception e) {
                System.out.println("error\t" + file.getFileName() + "\t" + e);
                System.exit(1);
            }
        }
    }
}
