//! quanyu connector for jd (being written).
